// The Capture view (#/capture): a note written into the notes folder, duplicates reported; a file uploaded (resumable).

import { docLink, field, h, notice, progressBar, setProgress, show } from "./dom.js";
import { api, followJob, guarded } from "./api.js";
import { forgetLibrary, getLibrary } from "./search.js";
import { uploadSection } from "./upload.js";
import { bookmarkletLink } from "./quick.js";

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
  show(h("h1", {}, "Capture"), form, uploadSection(), bookmarkletLink());
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
      const bar = progressBar("indexing");
      const line = h("p", {}, `Saved to ${res.path}. Indexing…`);
      status.append(line, bar);
      const f = await followJob(res.job_id, (x) => {
        setProgress(bar, x.chunks ? Math.round((100 * x.chunks_embedded) / x.chunks) : 0);
        line.textContent = `Saved to ${res.path}. ${x.state || "queued"}: ${x.chunks_embedded || 0} of ${x.chunks || "?"} chunks embedded.`;
      });
      bar.remove();
      line.replaceChildren(notice("ok", `Searchable now: ${f.chunks} chunk${f.chunks === 1 ? "" : "s"}. `),
        h("a", { href: docLink(res.document_id), id: "open-note" }, "Open the note"));
      title.value = "";
      body.value = "";
    }, status);
    save.disabled = false;
  });
  title.focus();
}
