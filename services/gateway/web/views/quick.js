// Quick capture (#/quick): a note in a few taps, on a phone too. A note goes into an outbox on the device first and is
// sent from there, so one made offline goes out when the network returns (the page, installed as an app, opens offline:
// sw.js). Each carries a client id sent as its Idempotency-Key: the gateway names the note's file by it, so a note sent
// twice (a reply lost on the way back, two tabs flushing) is still one note. The bookmarklet opens this view prefilled.

import { docLink, field, h, notice, show } from "./dom.js";
import { ApiError, request } from "./api.js";

const OUTBOX = "tessera.outbox";

export const outbox = () => {
  try {
    return JSON.parse(localStorage.getItem(OUTBOX) || "[]");
  } catch (_) {
    return [];
  }
};
const without = (id) => localStorage.setItem(OUTBOX, JSON.stringify(outbox().filter((x) => x.id !== id)));

function clientId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

let flushing = null;

/** Send the outbox, oldest first; a network failure stops it (the rest wait for the next try: the network returning,
 * the page opening, or half a minute). Each note sent or refused for good leaves the outbox and is announced as a
 * ``tessera-outbox`` event. */
export function flush() {
  // .finally runs after the assignment even when nothing waits (a promise's callbacks never run at once)
  flushing ||= send().finally(() => {
    flushing = null;
    window.dispatchEvent(new CustomEvent("tessera-outbox", { detail: {} }));
  });
  return flushing;
}

async function send() {
  for (const item of outbox()) {
    let detail;
    try {
      const resp = await request("POST", "/api/v1/notes", item.note, undefined, { "Idempotency-Key": item.id });
      detail = { item, sent: await resp.json() };
    } catch (e) {
      if (!(e instanceof ApiError) || e.status === 0 || e.status === 429 || e.status >= 500) return; // try again later
      detail = { item, error: e.message }; // refused for good (too large, bad input): it would never go
    }
    without(item.id);
    window.dispatchEvent(new CustomEvent("tessera-outbox", { detail }));
  }
}

/** The bookmarklet's code: it opens this view in a small window with the page's selection, address and title. */
export function bookmarklet(origin) {
  const code = `(()=>{const p=new URLSearchParams({title:document.title,url:location.href,text:String(getSelection())});`
    + `window.open(${JSON.stringify(origin + "/#/quick?")}+p,"tessera-quick","width=420,height=640")})()`;
  return `javascript:${encodeURIComponent(code)}`;
}

export function bookmarkletLink() {
  return h("p", { class: "muted small" }, "Bookmarklet, for a browser without the extension: drag ",
    h("a", { href: bookmarklet(location.origin), id: "bookmarklet", class: "tag" }, "Save to Tessera"),
    " to the bookmarks bar; on any page it opens Quick capture with the selection, the address and the title.");
}

export async function pageQuick(params) {
  const url = params.get("url") || "";
  const body = h("textarea", { id: "q-body", rows: "8", placeholder: "What do you want to remember?" });
  body.value = params.get("text") || "";
  const title = h("input", { id: "q-title", maxlength: "300", placeholder: "(the first line)", value: params.get("title") || "" });
  const tags = h("input", { id: "q-tags", placeholder: "tag1, tag2", autocapitalize: "none" });
  const project = h("input", { id: "q-project", placeholder: "(none)", autocapitalize: "none" });
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const status = h("div", { "aria-live": "polite", id: "q-status" });
  const waiting = h("p", { class: "muted small", id: "q-waiting" });
  const form = h("form", { class: "stack quick" }, field("Note", body), url ? h("p", { class: "muted small mono" }, `From ${url}`) : null,
    field("Title", title), h("div", { class: "row" }, field("Tags", tags), field("Project", project)), h("div", { class: "row" }, save),
    status, waiting);
  show(h("h1", {}, "Quick capture"), form, bookmarkletLink());

  const count = () => {
    const n = outbox().length;
    waiting.textContent = n ? `${n} note${n === 1 ? "" : "s"} on this device, waiting to be sent.` : "";
  };
  const said = (e) => {
    const { item, sent, error } = e.detail || {};
    if (sent) status.replaceChildren(notice("ok", `Sent: ${item.note.title}. `), h("a", { href: docLink(sent.document_id) }, "Open it"));
    else if (error) status.replaceChildren(notice("error", `Not saved: ${item.note.title}: ${error}`));
    count();
  };
  window.addEventListener("tessera-outbox", said);
  window.addEventListener("hashchange", () => window.removeEventListener("tessera-outbox", said), { once: true });
  count();

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = body.value.trim();
    if (!text) return status.replaceChildren(notice("error", "Write something first."));
    const first = text.split("\n")[0].replace(/^#+\s*/, "").slice(0, 80);
    const note = { title: title.value.trim() || first, body: body.value, tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean),
      project: project.value.trim(), ...(url ? { url } : {}) };
    const item = { id: clientId(), note, at: Date.now() };
    localStorage.setItem(OUTBOX, JSON.stringify([...outbox(), item]));
    body.value = "";
    title.value = "";
    status.replaceChildren(notice("info", "Saved on this device. Sending…"));
    count();
    await flush();
    if (outbox().some((x) => x.id === item.id)) await flush(); // a flush already under way had not seen it
    if (outbox().some((x) => x.id === item.id)) {
      status.replaceChildren(notice("info", "Saved on this device: it is sent when the network returns."));
    }
    body.focus();
  });
  body.focus();
}
