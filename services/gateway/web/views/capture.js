// The Capture view (#/capture): a note written into the notes folder, duplicates reported.

import { docLink, field, h, notice, show } from "./dom.js";
import { api, guarded } from "./api.js";
import { forgetLibrary, getLibrary } from "./search.js";

// -- Capture -------------------------------------------------------------------------------------------------------

export async function pageCapture() {
  const title = h("input", { id: "c-title", name: "title", required: true, maxlength: "300" });
  const type = h("select", { id: "c-type", name: "type" },
    ["note", "insight", "snippet", "decision", "bug", "reference", "howto", "meeting"].map((t) => h("option", { value: t }, t)));
  const tags = h("input", { id: "c-tags", name: "tags", placeholder: "tag1, tag2" });
  const project = h("input", { id: "c-project", name: "project", list: "projects", placeholder: "(none)" });
  const datalist = h("datalist", { id: "projects" });
  const body = h("textarea", { id: "c-body", name: "body", placeholder: "# Heading\n\nWrite in markdown…" });
  const preview = h("div", { class: "preview", role: "region", hidden: true, "aria-label": "preview" });
  const writeTab = h("button", { type: "button", role: "tab", "aria-selected": "true" }, "Write");
  const previewTab = h("button", { type: "button", role: "tab", "aria-selected": "false" }, "Preview");
  const status = h("div", { "aria-live": "polite" });
  const save = h("button", { type: "submit", class: "primary" }, "Save note");
  const form = h("form", { class: "stack" },
    h("div", { class: "row" }, field("Title", title), field("Type", type), field("Tags", tags), field("Project", project)), datalist,
    h("div", { class: "tabs", role: "tablist" }, writeTab, previewTab),
    field("Body (markdown)", body), preview, h("div", { class: "row" }, save), status);
  show(h("h1", {}, "Capture"), form);
  guarded(async () => (await getLibrary()).projects.forEach((p) => p.name && datalist.append(h("option", { value: p.name }))), status);

  function tab(previewing) {
    writeTab.setAttribute("aria-selected", String(!previewing));
    previewTab.setAttribute("aria-selected", String(previewing));
    body.parentElement.hidden = previewing;
    preview.hidden = !previewing;
  }
  writeTab.addEventListener("click", () => tab(false));
  previewTab.addEventListener("click", () => guarded(async () => {
    preview.innerHTML = (await api("POST", "/api/v1/markdown", { text: body.value })).html || "<p class='muted'>Nothing to preview.</p>";
    tab(true);
  }, status));

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.replaceChildren();
    if (!title.value.trim()) return status.append(notice("error", "The note needs a title."));
    if (!body.value.trim()) return status.append(notice("error", "The note is empty: write something first."));
    const size = new Blob([body.value]).size;
    if (size > 512000) return status.append(notice("error", `The note is too large: ${size} bytes; at most 512000.`));
    save.disabled = true;
    await guarded(async () => {
      const note = { title: title.value.trim(), body: body.value, type: type.value, project: project.value.trim(),
        tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean) };
      const res = await api("POST", "/api/v1/notes", note);
      forgetLibrary();
      if (res.duplicate) {
        status.append(notice("error", `Not saved: it nearly duplicates a note of this project (similarity ${res.similarity.toFixed(3)}). `),
          h("a", { href: docLink(res.document_id), id: "open-duplicate" }, `Open ${res.existing?.title || "the existing note"}`), " ",
          h("button", { type: "button", id: "save-anyway", onclick: async () => {
            await guarded(async () => {
              const forced = await api("POST", "/api/v1/notes", { ...note, force: true });
              status.replaceChildren(notice("ok", `Saved anyway to ${forced.path}. `), h("a", { href: docLink(forced.document_id) }, "Open it"));
            }, status);
          } }, "Save anyway"));
        save.disabled = false;
        return;
      }
      const bar = h("div", { class: "progress", role: "progressbar", "aria-label": "indexing", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" }, h("div", { style: "width: 0%" }));
      const line = h("p", {}, `Saved to ${res.path}. Indexing…`);
      status.append(line, bar);
      const deadline = Date.now() + 120000;
      for (;;) {
        const job = await api("GET", `/api/v1/jobs/${res.job_id}`);
        const f = job.files[0] || {};
        const pct = f.chunks ? Math.round((100 * f.chunks_embedded) / f.chunks) : 0;
        bar.setAttribute("aria-valuenow", String(pct));
        bar.firstChild.style.width = `${pct}%`;
        line.textContent = `Saved to ${res.path}. ${f.state || "queued"}: ${f.chunks_embedded || 0} of ${f.chunks || "?"} chunks embedded.`;
        if (f.state === "failed") throw new ApiError(422, `Indexing failed: ${f.reason}`);
        if (f.state === "embedded" || f.state === "unchanged") {
          bar.remove();
          line.replaceChildren(notice("ok", `Searchable now: ${f.chunks} chunk${f.chunks === 1 ? "" : "s"}. `),
            h("a", { href: docLink(res.document_id), id: "open-note" }, "Open the note"));
          title.value = "";
          body.value = "";
          break;
        }
        if (Date.now() > deadline) throw new ApiError(504, "The note is saved but not yet searchable after 2 minutes; look in Library.");
        await new Promise((r) => setTimeout(r, 300));
      }
    }, status);
    save.disabled = false;
  });
  title.focus();
}
