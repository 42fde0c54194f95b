// The Document view (#/doc/<id>): a note's lines, its chunks, its enrichment and related notes.

import { ago, docLink, field, h, lines, main, notice, pathLabel, show, tableRegion } from "./dom.js";
import { api, followJob, guarded } from "./api.js";

// -- Document ------------------------------------------------------------------------------------------------------

export async function pageDocument(id, params) {
  const range = (params.get("lines") || "").split("-").map(Number);
  const [a, b] = [range[0] || 0, range[1] || range[0] || 0];
  const cited = (s, e) => a && s <= b && e >= a;
  await guarded(async () => {
    const v = await api("GET", `/api/v1/documents/${encodeURIComponent(id)}/view`);
    const d = v.document;
    const fm = v.frontmatter;
    const rendered = h("div", { class: "blocks", role: "tabpanel", "aria-label": "rendered" }, v.blocks.map((blk) =>
      h("div", { class: `block${cited(blk.start, blk.end) ? " cited" : ""}`, "data-lines": lines(blk.start, blk.end) },
        h("div", { class: "ln", title: `lines ${lines(blk.start, blk.end)}` }, lines(blk.start, blk.end)), h("div", { class: "body", html: blk.html }))));
    const source = h("pre", { class: "source", role: "tabpanel", "aria-label": "source", hidden: true }, v.lines.map((text, i) => {
      const n = v.from_line + i;
      return h("div", { class: `line${cited(n, n) ? " cited" : ""}` }, h("span", { class: "ln" }, String(n)), h("span", {}, text || " "));
    }));
    const tabR = h("button", { type: "button", role: "tab", "aria-selected": "true" }, "Rendered");
    const tabS = h("button", { type: "button", role: "tab", "aria-selected": "false" }, "Source");
    const select = (src) => {
      tabR.setAttribute("aria-selected", String(!src));
      tabS.setAttribute("aria-selected", String(src));
      rendered.hidden = src;
      source.hidden = !src;
    };
    tabR.addEventListener("click", () => select(false));
    tabS.addEventListener("click", () => select(true));
    const related = h("ul", {});
    const chunks = h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "lines"), h("th", {}, "section"), h("th", {}, "chars"), h("th", {}, "embedded"))),
      h("tbody", {}, v.chunks.map((c) => h("tr", { class: cited(c.line_start, c.line_end) ? "cited" : null },
        h("td", {}, String(c.ord)), h("td", {}, h("a", { href: docLink(d.document_id, c.line_start, c.line_end) }, lines(c.line_start, c.line_end))),
        h("td", {}, c.heading_path.join(" › ")), h("td", {}, String(c.chars)), h("td", { class: c.embedded ? "state-embedded" : "state-queued" }, c.embedded ? "yes" : "not yet")))));
    show(h("div", { class: "cols" },
      h("article", {},
        h("div", { class: "doc-head" }, h("h1", {}, d.title || d.path.split("/").pop()),
          h("div", { class: "meta mono" }, pathLabel(d.path, d.project), a ? ` · cited lines ${lines(a, b)}` : ""),
          h("div", { class: "meta" }, d.type ? h("span", { class: "tag" }, d.type) : null, d.tags.map((t) => h("span", { class: "tag" }, `#${t}`)),
            d.project ? ` project ${d.project}` : "", ` · updated ${ago(d.updated_at)}`), h("div", { class: "row doc-actions" }, editControl(d, v, id, params), deleteControl(d))),
        fm && Object.keys(fm).length ? h("details", { class: "frontmatter", open: true }, h("summary", {}, `Frontmatter (lines 1-${v.frontmatter_lines})`),
          h("dl", {}, Object.entries(fm).map(([k, val]) => [h("dt", {}, k), h("dd", {}, Array.isArray(val) ? val.join(", ") : typeof val === "object" && val !== null ? JSON.stringify(val) : String(val))]))) : null,
        h("div", { class: "tabs", role: "tablist" }, tabR, tabS), rendered, source,
        v.truncated ? notice("info", `Showing lines ${v.from_line}-${v.from_line + v.lines.length - 1} of ${v.total_lines}.`) : null),
      h("aside", {},
        h("h2", {}, "Related notes"), related,
        h("h2", {}, "What the index sees"), h("p", { class: "muted small" }, `${v.chunks.length} chunks`), tableRegion("chunks", chunks))));
    const first = main.querySelector(".block.cited");
    if (first) first.scrollIntoView({ block: "center" });
    guarded(async () => {
      const r = await api("GET", `/api/v1/related?document_id=${encodeURIComponent(d.document_id)}&limit=8`);
      if (!r.related.length) related.append(h("li", { class: "muted small" }, "None yet."));
      for (const x of r.related) related.append(h("li", {}, h("a", { href: docLink(x.document_id), title: x.path }, x.title || x.path.split("/").pop()), h("span", { class: "muted small" }, ` ${x.score.toFixed(2)}`)));
    }, related);
  });
}

/** Edit a captured note in place: title, type, tags and body; saved, indexed again, then shown. An imported file is the
 * person's own: the button says where to edit it. The edit carries the note's content hash, so a note changed meanwhile
 * (another tab, an editor, an agent) is refused rather than overwritten. */
function editControl(d, v, id, params) {
  const open = h("button", { type: "button", id: "edit-note" }, "Edit note");
  if (!v.editable) {
    open.disabled = true;
    open.title = v.truncated ? "Too long to edit here: use tessera edit --editor" : "An imported file: edit it where it lies; the watcher picks it up";
    return open;
  }
  open.addEventListener("click", () => {
    const article = main.querySelector("article");
    const title = h("input", { id: "e-title", required: true, maxlength: "300", value: d.title });
    const type = h("input", { id: "e-type", maxlength: "40", value: d.type || "note" });
    const tags = h("input", { id: "e-tags", value: d.tags.join(", "), placeholder: "tag1, tag2" });
    const body = h("textarea", { id: "e-body", rows: "18" });
    body.value = v.lines.slice(v.frontmatter_lines).join("\n").trim();
    const status = h("div", { "aria-live": "polite" });
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    const form = h("form", { class: "stack", id: "edit-form" }, h("h1", {}, "Edit note"),
      h("div", { class: "row" }, field("Title", title), field("Type", type), field("Tags", tags)), field("Body (markdown)", body),
      h("div", { class: "row" }, save, h("button", { type: "button", onclick: () => pageDocument(id, params) }, "Cancel")), status);
    article.replaceChildren(form);
    title.focus();
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      status.replaceChildren();
      if (!title.value.trim() || !body.value.trim()) return status.append(notice("error", "A note needs a title and a body."));
      save.disabled = true;
      await guarded(async () => {
        const res = await api("PATCH", `/api/v1/documents/${encodeURIComponent(d.document_id)}`, { title: title.value.trim(),
          type: type.value.trim() || "note", body: body.value, tags: tags.value.split(",").map((s) => s.trim()).filter(Boolean),
          content_hash: d.content_hash });
        status.append(notice("ok", "Saved. Indexing again…"));
        await followJob(res.job_id);
        await pageDocument(id, params);
      }, status);
      save.disabled = false;
    });
  });
  return open;
}

/** Delete, confirmed in place: the note leaves the index, its vectors and cached results; a capture's file goes too. */
function deleteControl(d) {
  const box = h("div", { class: "row" });
  const idle = () => {
    const ask = h("button", { type: "button" }, "Delete note");
    ask.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger" }, "Delete");
      box.replaceChildren(h("p", { role: "alert" }, `Delete “${d.title || d.path.split("/").pop()}”? Answers that cited it keep the number, marked deleted. This cannot be undone.`),
        yes, h("button", { type: "button", onclick: idle }, "Cancel"));
      yes.addEventListener("click", () => guarded(async () => {
        const r = await api("DELETE", `/api/v1/documents/${encodeURIComponent(d.document_id)}`);
        location.hash = `#/library?deleted=${encodeURIComponent(r.deleted)}`;
      }, box));
      yes.focus();
    });
    box.replaceChildren(ask);
  };
  idle();
  return box;
}
