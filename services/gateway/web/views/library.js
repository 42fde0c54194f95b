// The Library view (#/library): projects, types and tags, recent documents and ingest jobs.

import { ago, docLink, field, h, notice, pathLabel, show, tableRegion } from "./dom.js";
import { api, guarded } from "./api.js";
import { forgetLibrary, getLibrary } from "./search.js";

// -- Library -------------------------------------------------------------------------------------------------------

export async function pageLibrary() {
  const counts = h("section", {});
  const path = h("input", { id: "i-path", name: "path", placeholder: "/home/me/notes", required: true, class: "wide" });
  const project = h("input", { id: "i-project", name: "project", placeholder: "(none)" });
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack" }, h("div", { class: "row" }, field("Folder or file", path), field("Project", project),
    h("button", { type: "submit", class: "primary" }, "Ingest")), status);
  const jobs = h("section", { "aria-live": "polite" });
  show(h("h1", {}, "Library"), counts, h("h2", {}, "Ingest a folder"), h("p", { class: "muted small" }, "Paths must lie under the ingest roots (TESSERA_INGEST_ROOTS)."), form, h("h2", {}, "Ingest jobs"), jobs);

  const table = (title, rows) => h("div", {}, h("h2", {}, title), rows.length ? h("table", {}, h("tbody", {}, rows.map((r) =>
    h("tr", {}, h("td", {}, r.name || "(none)"), h("td", {}, String(r.documents)))))) : h("p", { class: "muted small" }, "None."));

  async function loadJobs() {
    const res = await api("GET", "/api/v1/jobs?limit=15");
    jobs.replaceChildren(...res.jobs.map((j) => {
      const failed = j.files.filter((f) => f.state === "failed");
      return h("details", { class: "frontmatter", open: failed.length > 0 || !j.done },
        h("summary", {}, `${j.root || "uploaded note"} · ${j.counts.files} files · ${j.counts.embedded} embedded · ${j.counts.unchanged} unchanged · `,
          h("span", { class: failed.length ? "state-failed" : "" }, `${j.counts.failed} failed`), ` · ${j.done ? "done" : "running"} · ${ago(j.created_at)}`),
        tableRegion("files of the job", h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "file"), h("th", {}, "state"), h("th", {}, "chunks"), h("th", {}, "reason"))),
          h("tbody", {}, j.files.slice(0, 200).map((f) => h("tr", {},
            h("td", { class: "mono" }, f.document_id ? h("a", { href: docLink(f.document_id) }, pathLabel(f.path, j.project, "", j.root))
              : pathLabel(f.path, j.project, "", j.root)),
            h("td", { class: `state-${f.state}` }, f.state), h("td", {}, `${f.chunks_embedded}/${f.chunks}`), h("td", {}, f.reason || (f.warnings || []).join("; "))))))));
    }));
    if (!res.jobs.length) jobs.append(h("p", { class: "muted small" }, "No ingest jobs yet."));
    return res.jobs.some((j) => !j.done);
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    status.replaceChildren();
    const p = path.value.trim();
    if (!p.startsWith("/")) return status.append(notice("error", "Give an absolute path, starting with /."));
    await guarded(async () => {
      const job = await api("POST", "/api/v1/ingest", { path: p, project: project.value.trim() });
      status.append(notice("ok", `Started: ${job.counts.files} files queued.`));
      forgetLibrary();
      while (await loadJobs()) await new Promise((r) => setTimeout(r, 1000));
    }, status);
  });

  await guarded(async () => {
    forgetLibrary();
    const lib = await getLibrary();
    counts.replaceChildren(h("p", {}, `${lib.documents} documents · ${lib.chunks} chunks · ${lib.chunks_embedded} embedded`),
      h("div", { class: "row", style: "align-items: start; gap: 2rem" }, table("Projects", lib.projects), table("Types", lib.types), table("Tags", lib.tags.slice(0, 40))));
    await loadJobs();
  });
}
