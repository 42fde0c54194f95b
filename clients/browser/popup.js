// The toolbar's popup: save the reading tab's selection (or its readable text) as a note, and search the notes.

import { api, capture, pageOf, readingTab, settings } from "./tessera.js";

const $ = (id) => document.getElementById(id);
const say = (where, cls, text) => {
  where.className = cls;
  where.textContent = text;
};

async function start() {
  const { key, gateway } = await settings();
  $("setup").hidden = Boolean(key);
  const tab = await readingTab();
  let page = null;
  try {
    page = tab ? await pageOf(tab.id) : null;
  } catch (e) {
    say($("from"), "muted error", `This page cannot be read (${e.message}).`);
  }
  if (page) {
    $("title").value = page.title;
    $("from").textContent = page.selection ? `The selection (${page.selection.length} characters) from ${page.url}`
      : `Nothing selected: the page's text (${page.text.length} characters) from ${page.url}`;
    $("save-button").textContent = page.selection ? "Save selection" : "Save page";
  } else {
    $("save-button").disabled = true;
  }
  $("save").addEventListener("submit", async (e) => {
    e.preventDefault();
    say($("save-status"), "muted", "Saving…");
    try {
      const res = await capture(page, { title: $("title").value.trim(), project: $("project").value.trim(),
        tags: $("tags").value.split(",").map((s) => s.trim()).filter(Boolean) });
      say($("save-status"), res.duplicate ? "error" : "ok", res.duplicate ? `Not saved: it repeats ${res.existing?.title || "a note"}.` : `Saved to ${res.path}.`);
    } catch (err) {
      say($("save-status"), "error", err.message);
    }
  });
  $("search").addEventListener("submit", async (e) => {
    e.preventDefault();
    const hits = $("hits");
    hits.replaceChildren();
    try {
      const res = await api("POST", "/api/v1/search", { query: $("query").value, top_k: 8 });
      for (const hit of res.hits) {
        const a = Object.assign(document.createElement("a"), { href: `${gateway}/#/doc/${encodeURIComponent(hit.document_id)}`,
          target: "_blank", textContent: hit.title || hit.path });
        const li = document.createElement("li");
        li.append(a, Object.assign(document.createElement("div"), { className: "muted", textContent: hit.snippet }));
        hits.append(li);
      }
      if (!res.hits.length) hits.append(Object.assign(document.createElement("li"), { className: "muted", textContent: "Nothing found." }));
    } catch (err) {
      hits.append(Object.assign(document.createElement("li"), { className: "error", textContent: err.message }));
    }
  });
}

start();
