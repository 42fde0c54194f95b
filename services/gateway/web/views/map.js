// The Map view (#/map): topic clusters, the weekly review, stale notes.

import { docLink, h, notice, show } from "./dom.js";
import { api, guarded } from "./api.js";

// -- Map: clusters, the weekly review, stale notes -------------------------------------------------------------------

export async function pageMap(params) {
  const project = params.get("project") || "";
  const clusters = h("section", { "aria-live": "polite" }, h("p", { class: "muted" }, "Loading clusters…"));
  const review = h("section", { "aria-live": "polite" });
  const stale = h("section", {});
  const rebuild = h("button", { type: "button", id: "rebuild" }, "Re-cluster now");
  const preview = h("button", { type: "button", id: "review-preview" }, "Preview this week's review");
  const saveReview = h("button", { type: "button", class: "primary", id: "review-save" }, "Write the review as a note");
  show(h("h1", {}, "Map"), h("p", { class: "muted small" }, "Topic clusters by semantic proximity, named by their most distinctive terms."),
    h("div", { class: "row" }, rebuild), clusters, h("h2", {}, "Weekly review"), h("div", { class: "row" }, preview, saveReview), review,
    h("h2", {}, "Stale notes"), stale);

  async function load(rebuildNow) {
    const m = await api("GET", `/api/v1/map?examples=3&project=${encodeURIComponent(project)}${rebuildNow ? "&rebuild=true" : ""}`);
    const names = Object.fromEntries(m.clusters.map((c) => [c.cluster_id, c.name]));
    clusters.replaceChildren(
      m.clusters.length ? h("table", { id: "clusters" }, h("thead", {}, h("tr", {}, ["cluster", "project", "notes", "new this week", "closest notes"].map((x) => h("th", {}, x)))),
        h("tbody", {}, m.clusters.map((c) => h("tr", {}, h("td", {}, h("strong", {}, c.name)), h("td", {}, c.project || "(none)"), h("td", {}, String(c.size)),
          h("td", {}, c.new_documents ? `+${c.new_documents}` : ""),
          h("td", {}, c.examples.map((e, i) => [i ? " · " : "", h("a", { href: docLink(e.document_id) }, e.title || e.path.split("/").pop())]))))))
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
