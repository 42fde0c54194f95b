// The Map view (#/map): the notes as a picture (each a dot at its place, coloured by its cluster, a slider through the
// weeks), topic clusters, the weekly review, stale notes.

import { docLink, h, notice, show, tableRegion } from "./dom.js";
import { api, guarded } from "./api.js";

// -- Map: clusters, the weekly review, stale notes -------------------------------------------------------------------

export async function pageMap(params) {
  const project = params.get("project") || "";
  const picture = h("section", { id: "map-picture" });
  const clusters = h("section", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading clusters…"));
  const review = h("section", { "aria-live": "polite" });
  const stale = h("section", {});
  const rebuild = h("button", { type: "button", id: "rebuild" }, "Re-cluster now");
  const preview = h("button", { type: "button", id: "review-preview" }, "Preview this week's review");
  const saveReview = h("button", { type: "button", class: "primary", id: "review-save" }, "Write the review as a note");
  show(h("h1", {}, "Map"), h("p", { class: "muted small" }, "Topic clusters by semantic proximity, named by their most distinctive terms."),
    h("div", { class: "row" }, rebuild), picture, clusters, h("h2", {}, "Weekly review"), h("div", { class: "row" }, preview, saveReview), review,
    h("h2", {}, "Stale notes"), stale);

  async function load(rebuildNow) {
    const m = await api("GET", `/api/v1/map?examples=3&points=true&project=${encodeURIComponent(project)}${rebuildNow ? "&rebuild=true" : ""}`);
    const names = Object.fromEntries(m.clusters.map((c) => [c.cluster_id, c.name]));
    picture.replaceChildren(...pictures(m));
    clusters.replaceChildren(
      m.clusters.length ? tableRegion("clusters", h("table", { id: "clusters" }, h("thead", {}, h("tr", {}, ["cluster", "project", "notes", "new this week", "closest notes"].map((x) => h("th", {}, x)))),
        h("tbody", {}, m.clusters.map((c) => h("tr", {}, h("td", {}, h("strong", {}, c.name)), h("td", {}, c.project || "(none)"), h("td", {}, String(c.size)),
          h("td", {}, c.new_documents ? `+${c.new_documents}` : ""),
          h("td", {}, c.examples.map((e, i) => [i ? " · " : "", h("a", { href: docLink(e.document_id) }, e.title || e.path.split("/").pop())])))))))
        : h("p", { class: "muted" }, `No clusters yet: a project needs a few embedded notes.${m.unassigned ? ` ${m.unassigned} notes wait.` : ""}`),
      ...(m.merges.length ? [h("div", {}, h("h3", {}, "Merge suggestions"), h("ul", {}, m.merges.map((x) =>
        h("li", {}, `${names[x.a]} and ${names[x.b]}: centroids ${x.similarity.toFixed(2)} similar`))))] : []));
  }

  async function showReview(save) {
    review.replaceChildren(h("p", { class: "muted" }, "Writing the review…"));
    const r = save ? await api("POST", "/api/v1/review", { since: "7d", project, save: true })
      : await api("GET", `/api/v1/review?since=7d&project=${encodeURIComponent(project)}`);
    const html = await api("POST", "/api/v1/markdown", { text: r.markdown });
    const body = h("div", { class: "rendered", id: "review-body", html: html.html });
    review.replaceChildren(...(r.saved ? [notice("ok", `Saved as ${r.saved.path}. `), h("a", { href: docLink(r.saved.document_id) }, "Open it")] : []), body);
  }

  rebuild.addEventListener("click", () => guarded(() => load(true), clusters));
  preview.addEventListener("click", () => guarded(() => showReview(false), review));
  saveReview.addEventListener("click", () => guarded(() => showReview(true), review));
  await guarded(async () => {
    await load(false);
    const st = await api("GET", `/api/v1/stale?limit=20&project=${encodeURIComponent(project)}`);
    stale.replaceChildren(st.documents.length ? h("ul", {}, st.documents.map((d) => h("li", {}, h("a", { href: docLink(d.document_id) }, d.title),
      h("span", { class: "muted small" }, ` unchanged since ${d.updated_at.slice(0, 10)}, ${d.last_hit ? `last found ${d.last_hit.slice(0, 10)}` : "never found in a search"}`))))
      : h("p", { class: "muted small" }, `Nothing stale: every note changed or was found within ${st.days} days.`));
  }, clusters);
}

// -- The picture: one map per project (each is laid out on its own) ---------------------------------------------------

// The colours of `tessera map --png` (shared/tools/map_png.py), by the cluster's place among the sorted cluster ids.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
  "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF"];
const SVG = "http://www.w3.org/2000/svg";
const WEEK_MS = 7 * 24 * 3600 * 1000;
const W = 800, H = 480, PAD = 24;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function pictures(m) {
  if (!m.points.length) return [];
  const byProject = new Map();
  for (const p of m.points) {
    if (!byProject.has(p.project)) byProject.set(p.project, []);
    byProject.get(p.project).push(p);
  }
  const out = [];
  for (const [proj, points] of byProject) out.push(picture(proj, points, m));
  if (m.points_left_out) out.push(h("p", { class: "muted small" }, `${m.points_left_out} more notes are not drawn.`));
  return out;
}

/** One project's notes: dots coloured by cluster, names at the middle of each cluster, a slider through the weeks. */
function picture(proj, points, m) {
  const clusters = m.clusters.filter((c) => c.project === proj);
  const order = clusters.map((c) => c.cluster_id).sort((a, b) => a - b);
  const colour = (id) => (order.includes(id) ? PALETTE[order.indexOf(id) % PALETTE.length] : "#999999");
  const run = (m.runs || []).find((r) => r.project === proj);
  const place = (p) => [PAD + p.x * (W - 2 * PAD), PAD + (1 - p.y) * (H - 2 * PAD)];
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "map", role: "group", "aria-label": `Map of ${proj || "notes without a project"}` });
  const dots = points.map((p) => {
    const [x, y] = place(p);
    const go = () => { location.hash = docLink(p.document_id); };
    const dot = s("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 6, fill: colour(p.cluster_id), class: "dot", tabindex: 0, role: "link",
      "aria-label": p.title || p.path.split("/").pop(), "data-document-id": p.document_id }, s("title", {}, p.title || p.path));
    dot.addEventListener("click", go);
    dot.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    svg.append(dot);
    return { p, dot, at: Date.parse(p.created_at) };
  });
  const labels = [];
  for (const c of clusters) {
    const mine = points.filter((p) => p.cluster_id === c.cluster_id).map(place);
    if (!mine.length) continue;
    const cx = mine.reduce((a, q) => a + q[0], 0) / mine.length, cy = mine.reduce((a, q) => a + q[1], 0) / mine.length;
    // near an edge the name runs inwards, so it is never cut off
    const anchor = cx < W * 0.25 ? "start" : cx > W * 0.75 ? "end" : "middle";
    const label = s("text", { x: cx.toFixed(1), y: Math.max(16, cy - 10).toFixed(1), class: "cluster-name", "text-anchor": anchor }, c.name);
    svg.append(label);
    labels.push({ id: c.cluster_id, label });
  }
  // the weeks: each step shows the notes created by its end
  const first = Math.min(...dots.map((d) => d.at)), last = Math.max(...dots.map((d) => d.at));
  const weeks = Math.max(1, Math.ceil((last - first) / WEEK_MS) + 1);
  const said = h("span", { class: "muted small", "aria-live": "polite" });
  const slider = h("input", { type: "range", min: 0, max: weeks - 1, value: weeks - 1, step: 1, "aria-label": "Show the notes up to this week" });
  const update = () => {
    const end = first + (Number(slider.value) + 1) * WEEK_MS;
    let shown = 0;
    const visible = new Set();
    for (const d of dots) {
      const on = d.at < end || Number(slider.value) === weeks - 1;
      d.dot.style.display = on ? "" : "none";
      shown += on ? 1 : 0;
      if (on) visible.add(d.p.cluster_id);
    }
    for (const { id, label } of labels) label.style.display = visible.has(id) ? "" : "none";
    const day = new Date(Math.min(end, last + 1) - 1).toISOString().slice(0, 10);
    said.textContent = `${shown} of ${points.length} notes by ${day}`;
  };
  slider.addEventListener("input", update);
  update();
  const quality = run ? `${run.clusters} clusters, silhouette ${run.silhouette.toFixed(2)}` : "";
  return h("figure", { class: "map-figure" }, h("figcaption", {}, h("strong", {}, proj || "(no project)"), ` · ${points.length} notes`,
    quality ? ` · ${quality}` : ""), svg, h("div", { class: "row" }, h("label", {}, "Week ", slider), said));
}
