// The gateway's JSON API with the session's cookie: a 401 asks for a key (the dialog), exchanges it for a session
// cookie, and tries again.

import { banner, main, notice } from "./dom.js";

// -- API -----------------------------------------------------------------------------------------------------------

export const KEY = "tessera.api_key";

export class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export let keyWaiters = null;

/** Ask for an API key in the dialog; resolves once one is entered. */
export function askForKey(message) {
  const dlg = document.getElementById("key-dialog");
  if (!keyWaiters || /not valid/.test(message)) document.getElementById("key-message").textContent = message;
  if (!keyWaiters) {
    keyWaiters = [];
    const input = document.getElementById("key-input");
    input.value = "";
    dlg.showModal();
    input.focus();
  }
  return new Promise((resolve) => keyWaiters.push(resolve));
}

/** Exchange a typed key for the gateway's HttpOnly session cookie: the key is sent once and kept nowhere in the page. */
async function startSession(value) {
  const resp = await fetch("/api/v1/session", { method: "POST", headers: { Authorization: `Bearer ${value}` } });
  if (!resp.ok) throw await errorOf(resp);
}

document.getElementById("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const value = document.getElementById("key-input").value.trim();
  if (!value) return;
  sessionStorage.removeItem(KEY); // an older page kept the key here
  try {
    await startSession(value);
  } catch (err) {
    document.getElementById("key-message").textContent =
      err.status === 401 ? "That API key is not valid. Enter another one." : err.message;
    return;
  }
  document.getElementById("key-dialog").close();
  const waiters = keyWaiters || [];
  keyWaiters = null;
  waiters.forEach((w) => w());
});
document.getElementById("key-dialog").addEventListener("cancel", (e) => e.preventDefault()); // a key is needed to go on

export function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  return out; // the session cookie says who asks
}

export async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    message = body?.error?.message || message;
  } catch (_) {
    /* not JSON */
  }
  const retry = Number(resp.headers.get("Retry-After")) || null;
  if (resp.status === 429 && retry && /queue|busy/i.test(message)) message = `The chat is busy: retry in ${retry} s. (${message})`;
  else if (resp.status === 429 && retry) message = `${message}`;
  if (resp.status === 503 || resp.status === 502 || resp.status === 504) message = `The mesh cannot answer right now: ${message}`;
  return new ApiError(resp.status, message, retry);
}

/** fetch against the gateway with the session's key; a 401 asks for a key and tries again. Returns the Response.
 * ``body``: sent as JSON, or as it is when a Blob (with ``extra`` headers, e.g. tus's). */
export async function request(method, path, body, signal, extra) {
  const raw = body instanceof Blob;
  for (let attempt = 0; attempt < 5; attempt++) {
    let resp;
    try {
      resp = await fetch(path, { method, headers: { ...headers(body !== undefined && !raw), ...(extra || {}) },
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body), signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "The gateway is not answering: is the mesh running? (make run, then tessera status)");
    }
    if (resp.status === 401) {
      await askForKey(attempt ? "That session ended. Enter a key again." : "This gateway needs an API key.");
      continue;
    }
    if (!resp.ok) throw await errorOf(resp);
    setBanner("");
    return resp;
  }
  throw new ApiError(401, "No valid API key was given.");
}

export async function api(method, path, body) {
  const resp = await request(method, path, body);
  return resp.status === 204 ? null : resp.json();
}

/** Poll an ingest job until its file is searchable (or failed); ``onFile(file)`` at each look. Resolves with the file. */
export async function followJob(jobId, onFile = () => {}, waitS = 120) {
  const deadline = Date.now() + waitS * 1000;
  for (;;) {
    const f = (await api("GET", `/api/v1/jobs/${encodeURIComponent(jobId)}`)).files[0] || {};
    onFile(f);
    if (f.state === "failed") throw new ApiError(422, `Saved, but indexing failed: ${f.reason}`);
    if (f.state === "embedded" || f.state === "unchanged") return f;
    if (Date.now() > deadline) throw new ApiError(504, `Saved, but not yet searchable after ${Math.round(waitS / 60)} minutes; look in Library.`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

export function setBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

/** Run a page's loader; an error becomes a message in the page (and the banner when the mesh is down). */
export async function guarded(fn, where) {
  try {
    await fn();
  } catch (e) {
    if (e.name === "AbortError") return;
    const message = e instanceof ApiError ? e.message : `Something went wrong in the page: ${e.message}`;
    if (e instanceof ApiError && (e.status === 0 || e.status >= 502)) setBanner(message);
    (where || main).append(notice("error", message));
  }
}
