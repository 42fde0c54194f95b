// What the popup, the options page and the background worker share: the gateway's address and key (kept in the
// extension's own storage, never in a page's), calls to the gateway's API, and the page's selection or readable text.

export const DEFAULTS = { gateway: "http://127.0.0.1:8470", key: "" };
/** The most of a page's text saved when nothing is selected. */
export const MAX_TEXT = 200000;

export async function settings() {
  return { ...DEFAULTS, ...(await chrome.storage.local.get(["gateway", "key"])) };
}

export async function saveSettings(gateway, key) {
  const url = new URL(gateway); // throws on a bad address
  if (!/^https?:$/.test(url.protocol)) throw new Error("The gateway's address starts with http:// or https://");
  await chrome.storage.local.set({ gateway: url.origin, key: key.trim() });
  return url.origin;
}

/** A call to the gateway with the key; an error carries the gateway's sentence. */
export async function api(method, path, body) {
  const { gateway, key } = await settings();
  if (!key) throw new Error("No API key yet: open the extension's options and paste one.");
  let resp;
  try {
    resp = await fetch(gateway + path, { method, headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
      body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (_) {
    throw new Error(`The gateway at ${gateway} is not answering: is Tessera running?`);
  }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const said = data?.error?.message || `${resp.status} ${resp.statusText}`;
    if (resp.status === 403 && /origin/.test(said)) {
      throw new Error(`The gateway does not accept this extension yet: add ${location.origin} to TESSERA_GATEWAY_ALLOWED_ORIGINS (${said})`);
    }
    throw new Error(said);
  }
  return data;
}

/** Runs in the page: its selection, else its readable text (an article's, the main part's, or the body's). */
function readPage(max) {
  const selection = String(getSelection()).trim();
  const main = document.querySelector("article") || document.querySelector("main") || document.body;
  return { selection, text: selection ? "" : (main?.innerText || "").trim().slice(0, max), url: location.href, title: document.title };
}

export async function pageOf(tabId) {
  const [result] = await chrome.scripting.executeScript({ target: { tabId }, func: readPage, args: [MAX_TEXT] });
  return result.result;
}

/** The tab the person was reading: the active one, or (when the popup itself is open as a tab) the last one used. */
export async function readingTab() {
  const web = (t) => /^https?:/.test(t.url || "");
  const [active] = await chrome.tabs.query({ active: true, lastFocusedWindow: true });
  if (active && web(active)) return active;
  const tabs = (await chrome.tabs.query({})).filter(web);
  tabs.sort((a, b) => (b.lastAccessed || 0) - (a.lastAccessed || 0));
  return tabs[0];
}

export async function capture(page, { title, tags, project }) {
  const body = page.selection || page.text;
  if (!body) throw new Error("Nothing to save: the page has no text.");
  const quoted = page.selection ? body.split("\n").map((l) => `> ${l}`).join("\n") : body;
  return api("POST", "/api/v1/notes", { title: (title || page.title || page.url).slice(0, 300), body: `${quoted}\n\nFrom [${page.title || page.url}](${page.url})`,
    url: /^https?:/.test(page.url) ? page.url : "", tags, project });
}
