// The Search view (#/search): hybrid search with filters, hits with their signals, keyboard navigation.

import { docLink, field, fmtScore, h, lines, notice, pathLabel, show } from "./dom.js";
import { api, guarded } from "./api.js";

// -- Search --------------------------------------------------------------------------------------------------------

let library = null;

/** The library changed (a capture, a deletion): the next getLibrary() asks again. */
export function forgetLibrary() {
  library = null;
}

export async function getLibrary() {
  if (!library) library = await api("GET", "/api/v1/library");
  return library;
}

export function highlighted(text, spans) {
  const out = [];
  let at = 0;
  for (const [a, b] of spans || []) {
    if (a < at) continue;
    out.push(text.slice(at, a), h("mark", {}, text.slice(a, b)));
    at = b;
  }
  out.push(text.slice(at));
  return out;
}

export function signalsOf(hit) {
  const parts = [h("span", { title: "fused score" }, `score ${fmtScore(hit.score)}`)];
  for (const [name, s] of Object.entries(hit.signals || {})) {
    parts.push(s.rank ? h("span", { title: `${name} signal: raw score and rank` }, `${name} ${fmtScore(s.score)} (#${s.rank})`)
      : h("span", { title: `not found by the ${name} signal` }, `${name} –`));
  }
  return h("div", { class: "signals", role: "group", "aria-label": "scores" }, parts);
}

export function hitItem(hit, i) {
  const href = docLink(hit.document_id, hit.line_start, hit.line_end);
  return h("li", { class: "hit", tabindex: "0", "data-href": href, "data-index": i, "aria-label": `${hit.title}, ${hit.path} lines ${lines(hit.line_start, hit.line_end)}` },
    h("a", { class: "title", href, tabindex: "-1" }, hit.title || hit.path.split("/").pop()),
    h("div", { class: "where mono" }, pathLabel(hit.path, hit.project, `:${lines(hit.line_start, hit.line_end)}`),
      hit.heading_path?.length ? ` · ${hit.heading_path.join(" › ")}` : ""),
    h("div", { class: "snippet" }, highlighted(hit.snippet, hit.highlights)),
    enriched(hit.enrichment),
    h("div", { class: "row" }, signalsOf(hit), h("span", {}, hit.type ? h("span", { class: "tag" }, hit.type) : null,
      (hit.tags || []).map((t) => h("span", { class: "tag" }, `#${t}`)))));
}

// What enrichment said about a document: its kind, summary, tags and entities (nothing until it is done).
export function enriched(e) {
  if (!e || e.state !== "enriched") return null;
  return h("div", { class: "enrichment small" }, h("span", { class: "tag kind", title: "type (enrichment)" }, e.kind), " ",
    e.summary ? h("span", { class: "muted" }, e.summary) : null, " ",
    (e.tags || []).map((t) => h("span", { class: "tag auto", title: "tag (enrichment)" }, `#${t}`)),
    (e.entities || []).length ? h("span", { class: "muted" }, ` · ${e.entities.map((x) => x.name).join(", ")}`) : null);
}

export function options(select, values, empty) {
  select.append(h("option", { value: "" }, empty));
  for (const v of values) select.append(h("option", { value: v.name }, `${v.name || "(no project)"} (${v.documents})`));
  return select;
}

export async function pageSearch(params) {
  const q = h("input", { type: "search", id: "q", name: "q", value: params.get("q") || "", placeholder: "What are you looking for?", autocomplete: "off" });
  const project = h("select", { id: "f-project", name: "project" });
  const type = h("select", { id: "f-type", name: "type" });
  const tags = h("input", { id: "f-tags", name: "tags", placeholder: "tag1, tag2", value: params.get("tags") || "" });
  const after = h("input", { id: "f-after", name: "after", type: "date", value: params.get("after") || "" });
  const mode = h("select", { id: "f-mode", name: "mode" }, ["hybrid", "lexical", "vector"].map((m) => h("option", { value: m }, m)));
  mode.value = params.get("mode") || "hybrid";
  const results = h("section", { "aria-live": "polite", "aria-label": "results" });
  const form = h("form", { class: "stack", role: "search" },
    h("div", { class: "row" }, field("Query", q), h("button", { type: "submit", class: "primary" }, "Search")),
    h("div", { class: "row" }, field("Project", project), field("Type", type), field("Tags", tags), field("Updated after", after), field("Mode", mode)));
  show(h("h1", {}, "Search"), form, results);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const [k, el] of [["q", q], ["project", project], ["type", type], ["tags", tags], ["after", after], ["mode", mode]]) {
      if (el.value && !(k === "mode" && el.value === "hybrid")) next.set(k, el.value);
    }
    const target = `#/search?${next}`;
    if (location.hash === target) run();
    else location.hash = target;
  });
  guarded(async () => {
    const lib = await getLibrary();
    options(project, lib.projects, "All projects");
    options(type, lib.types, "All types");
    project.value = params.get("project") || "";
    type.value = params.get("type") || "";
  }, results);

  async function run() {
    const query = q.value.trim();
    results.replaceChildren();
    if (!query) {
      if (params.has("q")) results.append(notice("error", "Type something to search for: the query is empty."));
      return;
    }
    const filters = { project: project.value || params.get("project") || "", types: [], tags: [] };
    const t = type.value || params.get("type");
    if (t) filters.types = [t];
    filters.tags = tags.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (after.value) filters.updated_after = new Date(after.value + "T00:00:00").toISOString();
    const body = { query, top_k: 20, mode: mode.value, filters };
    await guarded(async () => {
      const res = await api("POST", "/api/v1/search", body);
      if (res.degraded) results.append(notice("info", res.degraded));
      if (!res.hits.length) {
        results.append(notice("info", "No notes match. Try other words, or fewer filters."));
        return;
      }
      results.append(h("p", { class: "muted small" }, `${res.hits.length} hits in ${res.took_ms} ms${res.cached ? " (cached)" : ""} · ↑/↓ to move, Enter to open, / to search`),
        h("ol", { class: "hits" }, res.hits.map(hitItem)));
    }, results);
  }
  if (params.get("q") !== null) await run();
  else q.focus();
}

// Keyboard: "/" focuses the query box; arrows (or j/k) move between hits; Enter opens one.
document.addEventListener("keydown", (e) => {
  const typing = /INPUT|TEXTAREA|SELECT/.test(document.activeElement?.tagName || "");
  if (e.key === "/" && !typing && document.getElementById("q")) {
    e.preventDefault();
    document.getElementById("q").focus();
    return;
  }
  const hits = [...document.querySelectorAll(".hit")];
  if (!hits.length) return;
  const at = hits.indexOf(document.activeElement);
  const down = e.key === "ArrowDown" || (e.key === "j" && !typing);
  const up = e.key === "ArrowUp" || (e.key === "k" && !typing);
  if (down && (at >= 0 || document.activeElement?.id === "q")) {
    e.preventDefault();
    hits[Math.min(hits.length - 1, at + 1)].focus();
  } else if (up && at >= 0) {
    e.preventDefault();
    if (at === 0) document.getElementById("q")?.focus();
    else hits[at - 1].focus();
  } else if (e.key === "Enter" && at >= 0) {
    e.preventDefault();
    location.hash = hits[at].dataset.href;
  }
});
