// Resumable uploads from the page: tus 1.0 against /api/v1/uploads. A cut connection is retried from the server's
// offset by itself, then by Resume; after a reload, choosing the same file again goes on where it stopped (the upload's
// URL is kept in localStorage under the file's name, size and date until it completes).

import { docLink, field, h, notice, progressBar, setProgress } from "./dom.js";
import { ApiError, followJob, guarded, request } from "./api.js";

const TUS = { "Tus-Resumable": "1.0.0" };
/** Waits before each retry of a part that did not arrive; then the person decides (Resume). */
const RETRIES_MS = [500, 2000, 4000];

/** Parts of about a twentieth of the file (progress moves in steps of 5 % or less), 64 KiB to 16 MiB. */
export function partSize(size) {
  return Math.min(16 << 20, Math.max(64 << 10, Math.ceil(size / 20)));
}

const keyOf = (file, project) => `tessera.upload:${project}:${file.name}:${file.size}:${file.lastModified}`;
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function offsetOf(url) {
  const r = await request("HEAD", url, undefined, undefined, TUS);
  return Number(r.headers.get("Upload-Offset"));
}

/** The upload this file had begun (and its offset), or a new one. */
async function begin(file, project) {
  const key = keyOf(file, project);
  const known = localStorage.getItem(key);
  if (known) {
    try {
      return { url: known, offset: await offsetOf(known), resumed: true };
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404) throw e; // 404: it expired or completed; start again
      localStorage.removeItem(key);
    }
  }
  const meta = [`filename ${b64(new TextEncoder().encode(file.name))}`];
  if (project) meta.push(`project ${b64(new TextEncoder().encode(project))}`);
  const r = await request("POST", "/api/v1/uploads", undefined, undefined,
    { ...TUS, "Upload-Length": String(file.size), "Upload-Metadata": meta.join(",") });
  const url = r.headers.get("Location");
  localStorage.setItem(key, url);
  return { url, offset: 0, resumed: false };
}

/** Upload-Checksum for a part; none outside a secure context (no crypto.subtle), where the length still checks it. */
async function checksum(part) {
  if (!globalThis.crypto?.subtle) return {};
  const digest = await crypto.subtle.digest("SHA-1", await part.arrayBuffer());
  return { "Upload-Checksum": `sha1 ${b64(new Uint8Array(digest))}` };
}

/** Send ``file`` from where the gateway has it; ``onProgress(sent, total, resumedAt)``. Resolves with the ingest job's id;
 * rejects with ``error.resumable`` when the connection stayed broken through the retries. */
export async function upload(file, project, onProgress) {
  const { url, offset: start, resumed } = await begin(file, project);
  let offset = start;
  onProgress(offset, file.size, resumed ? offset : null);
  const step = partSize(file.size);
  for (let failures = 0; ;) {
    const part = file.slice(offset, Math.min(offset + step, file.size));
    let resp;
    try {
      resp = await request("PATCH", url, part, undefined, { ...TUS, "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": String(offset), ...(await checksum(part)) });
    } catch (e) {
      const broken = !(e instanceof ApiError) || e.status === 0 || e.status === 409 || e.status === 460 || e.status >= 500;
      if (!broken) throw e; // refused for good (too large, no longer there): retrying cannot help
      if (failures === RETRIES_MS.length) throw Object.assign(e, { resumable: true });
      await sleep(RETRIES_MS[failures++]);
      try {
        offset = await offsetOf(url); // what arrived of the broken part is kept: go on from there
      } catch (_) {
        /* still broken: the next try says so */
      }
      continue;
    }
    failures = 0;
    offset = Number(resp.headers.get("Upload-Offset"));
    onProgress(offset, file.size, null);
    if (offset >= file.size) {
      localStorage.removeItem(keyOf(file, project));
      return resp.headers.get("Tessera-Job-Id");
    }
  }
}

/** The Capture page's "Upload a file" section: a file, a project, progress, and Resume after a broken connection. */
export function uploadSection() {
  const input = h("input", { id: "u-file", type: "file" });
  const project = h("input", { id: "u-project", list: "projects", placeholder: "(none)" });
  const go = h("button", { type: "submit" }, "Upload");
  const status = h("div", { "aria-live": "polite" });
  const bar = progressBar("upload");
  const line = h("p", { class: "small" });
  const form = h("form", { class: "stack", id: "upload-form" },
    h("h2", {}, "Upload a file"),
    h("p", { class: "muted small" }, "Markdown, text, PDF and the other types ingest reads. A broken upload goes on where it "
      + "stopped: by itself, with Resume, or by choosing the same file again after a reload."),
    h("div", { class: "row" }, field("File", input), field("Upload to project", project)), h("div", { class: "row" }, go), status);

  async function send() {
    const file = input.files[0];
    status.replaceChildren();
    if (!file) return status.append(notice("error", "Choose a file first."));
    if (!file.size) return status.append(notice("error", `${file.name} is empty: there is nothing to upload.`));
    go.disabled = true;
    status.append(line, bar);
    // Where this attempt went on from, said until it ends (not only until the next part arrives).
    let resumed = "";
    try {
      const jobId = await upload(file, project.value.trim(), (sent, total, resumedAt) => {
        if (resumedAt !== null && resumedAt > 0) resumed = `Resumed at ${Math.floor((100 * resumedAt) / total)} %. `;
        setProgress(bar, Math.floor((100 * sent) / total));
        line.textContent = `${resumed}Uploaded ${Math.floor((100 * sent) / total)} % (${sent} of ${total} bytes).`;
      });
      line.textContent = `${resumed}Uploaded ${file.name}. Indexing…`;
      setProgress(bar, 0);
      await guarded(async () => {
        const f = await followJob(jobId, (x) => setProgress(bar, x.chunks ? Math.round((100 * x.chunks_embedded) / x.chunks) : 0), 600);
        bar.remove();
        line.replaceChildren(notice("ok", `${resumed}Searchable now: ${f.chunks} chunk${f.chunks === 1 ? "" : "s"}. `),
          h("a", { href: docLink(f.document_id), id: "open-upload" }, "Open it"));
      }, status);
    } catch (e) {
      if (e.name === "AbortError") return;
      const message = e instanceof ApiError ? e.message : `Something went wrong in the page: ${e.message}`;
      status.append(notice("error", e.resumable ? `The upload stopped at ${bar.getAttribute("aria-valuenow")} %: ${message}` : message));
      if (e.resumable) status.append(h("button", { type: "button", id: "resume-upload", onclick: send }, "Resume"));
    } finally {
      go.disabled = false;
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    send();
  });
  return form;
}
