// Tessera's web page: one module, no framework, no build step, nothing fetched from any other host.
// Pages are hash routes (#/search, #/ask, #/capture, #/doc/<id>, #/library, #/map, #/status) over the gateway's JSON API.

const KEY = "tessera.api_key";
const main = document.getElementById("main");
const banner = document.getElementById("banner");

// -- DOM -----------------------------------------------------------------------------------------------------------

/** An element: h("a", {href: "#"}, "text", child, ...); attributes starting with "on" are listeners. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "html") el.innerHTML = v; // only for HTML the gateway rendered (markdown with raw HTML escaped)
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function field(label, input, hint) {
  if (!input.id) input.id = "f-" + label.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("span", { class: "muted small" }, hint) : null);
}

function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function fmtScore(x) {
  return Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(3);
}

function lines(a, b) {
  return a === b ? `${a}` : `${a}-${b}`;
}

function docLink(id, a, b) {
  return `#/doc/${encodeURIComponent(id)}` + (a ? `?lines=${lines(a, b || a)}` : "");
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!t) return "";
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 90) return "just now";
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}

// -- API -----------------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

let keyWaiters = null;

/** Ask for an API key in the dialog; resolves once one is entered. */
function askForKey(message) {
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

document.getElementById("key-form").addEventListener("submit", () => {
  const value = document.getElementById("key-input").value.trim();
  if (!value) return;
  sessionStorage.setItem(KEY, value);
  const waiters = keyWaiters || [];
  keyWaiters = null;
  waiters.forEach((w) => w());
});
document.getElementById("key-dialog").addEventListener("cancel", (e) => e.preventDefault()); // a key is needed to go on

function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  const key = sessionStorage.getItem(KEY);
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function errorOf(resp) {
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

/** fetch against the gateway with the session's key; a 401 asks for a key and tries again. Returns the Response. */
async function request(method, path, body, signal) {
  for (let attempt = 0; attempt < 5; attempt++) {
    let resp;
    const sent = sessionStorage.getItem(KEY);
    try {
      resp = await fetch(path, { method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "The gateway is not answering: is the mesh running? (make run, then tessera status)");
    }
    if (resp.status === 401) {
      if (sessionStorage.getItem(KEY) === sent) sessionStorage.removeItem(KEY);
      await askForKey(sent ? "That API key is not valid. Enter another one." : "This gateway needs an API key.");
      continue;
    }
    if (!resp.ok) throw await errorOf(resp);
    setBanner("");
    return resp;
  }
  throw new ApiError(401, "No valid API key was given.");
}

async function api(method, path, body) {
  const resp = await request(method, path, body);
  return resp.status === 204 ? null : resp.json();
}

function setBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

/** Run a page's loader; an error becomes a message in the page (and the banner when the mesh is down). */
async function guarded(fn, where) {
  try {
    await fn();
  } catch (e) {
    if (e.name === "AbortError") return;
    const message = e instanceof ApiError ? e.message : `Something went wrong in the page: ${e.message}`;
    if (e instanceof ApiError && (e.status === 0 || e.status >= 502)) setBanner(message);
    (where || main).append(notice("error", message));
  }
}

// -- Search --------------------------------------------------------------------------------------------------------

let library = null;

async function getLibrary() {
  if (!library) library = await api("GET", "/api/v1/library");
  return library;
}

function highlighted(text, spans) {
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

function signalsOf(hit) {
  const parts = [h("span", { title: "fused score" }, `score ${fmtScore(hit.score)}`)];
  for (const [name, s] of Object.entries(hit.signals || {})) {
    parts.push(s.rank ? h("span", { title: `${name} signal: raw score and rank` }, `${name} ${fmtScore(s.score)} (#${s.rank})`)
      : h("span", { title: `not found by the ${name} signal` }, `${name} –`));
  }
  return h("div", { class: "signals", role: "group", "aria-label": "scores" }, parts);
}

function hitItem(hit, i) {
  const href = docLink(hit.document_id, hit.line_start, hit.line_end);
  return h("li", { class: "hit", tabindex: "0", "data-href": href, "data-index": i, "aria-label": `${hit.title}, ${hit.path} lines ${lines(hit.line_start, hit.line_end)}` },
    h("a", { class: "title", href, tabindex: "-1" }, hit.title || hit.path.split("/").pop()),
    h("div", { class: "where mono" }, `${hit.path}:${lines(hit.line_start, hit.line_end)}`,
      hit.heading_path?.length ? ` · ${hit.heading_path.join(" › ")}` : ""),
    h("div", { class: "snippet" }, highlighted(hit.snippet, hit.highlights)),
    enriched(hit.enrichment),
    h("div", { class: "row" }, signalsOf(hit), h("span", {}, hit.type ? h("span", { class: "tag" }, hit.type) : null,
      (hit.tags || []).map((t) => h("span", { class: "tag" }, `#${t}`)))));
}

// What enrichment said about a document: its kind, summary, tags and entities (nothing until it is done).
function enriched(e) {
  if (!e || e.state !== "enriched") return null;
  return h("div", { class: "enrichment small" }, h("span", { class: "tag kind", title: "type (enrichment)" }, e.kind), " ",
    e.summary ? h("span", { class: "muted" }, e.summary) : null, " ",
    (e.tags || []).map((t) => h("span", { class: "tag auto", title: "tag (enrichment)" }, `#${t}`)),
    (e.entities || []).length ? h("span", { class: "muted" }, ` · ${e.entities.map((x) => x.name).join(", ")}`) : null);
}

function options(select, values, empty) {
  select.append(h("option", { value: "" }, empty));
  for (const v of values) select.append(h("option", { value: v.name }, `${v.name || "(no project)"} (${v.documents})`));
  return select;
}

async function pageSearch(params) {
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

// -- Ask -----------------------------------------------------------------------------------------------------------

/** Parse a text/event-stream body, calling onEvent(name, data) for each event. */
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

function chip(c) {
  return h("a", { class: "chip", href: docLink(c.document_id, c.line_start, c.line_end), title: `${c.path}:${lines(c.line_start, c.line_end)}` },
    `[${c.number}] ${c.title || c.path.split("/").pop()} · ${lines(c.line_start, c.line_end)}`);
}

function messageView(role, text, citations, meta) {
  const body = h("div", { class: "text" }, text);
  const chips = h("div", { class: "chips", role: "group", "aria-label": "citations" }, (citations || []).map(chip));
  const metaEl = h("div", { class: "meta" }, meta || "");
  const el = h("article", { class: `msg ${role}`, "aria-label": role === "user" ? "you asked" : "answer" }, body, chips, metaEl);
  return { el, body, chips, metaEl };
}

let activeChat = null; // {controller} of the answer being streamed

async function pageAsk(conversationId) {
  const list = h("ul", {});
  const thread = h("div", { class: "thread", "aria-live": "polite" });
  const question = h("textarea", { id: "question", name: "question", rows: "3", placeholder: "Ask your notes…", style: "min-height: 5rem" });
  const askBtn = h("button", { type: "submit", class: "primary" }, "Ask");
  const stopBtn = h("button", { type: "button", id: "stop", disabled: true }, "Stop");
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack" }, field("Question", question), h("div", { class: "row" }, askBtn, stopBtn), status);
  let conversation = conversationId || "";
  show(h("div", { class: "ask" },
    h("aside", { "aria-label": "conversations" }, h("h2", {}, "Conversations"), h("a", { href: "#/ask", class: "chip" }, "+ New conversation"), list),
    h("section", {}, h("h1", {}, "Ask"), thread, form)));

  guarded(async () => {
    const res = await api("GET", "/api/v1/conversations?limit=50");
    if (!res.conversations.length) list.append(h("li", { class: "muted small" }, "None yet."));
    for (const c of res.conversations) {
      list.append(h("li", {}, h("a", { href: `#/ask/${c.conversation_id}`, "aria-current": c.conversation_id === conversation ? "true" : null, title: c.title },
        c.title || "(untitled)", h("span", { class: "muted small" }, ` · ${ago(c.created_at)}`))));
    }
  }, list);

  if (conversation) {
    await guarded(async () => {
      const c = await api("GET", `/api/v1/conversations/${encodeURIComponent(conversation)}`);
      for (const m of c.messages) thread.append(messageView(m.role, m.content, m.citations).el);
    }, thread);
  }

  stopBtn.addEventListener("click", () => activeChat?.controller.abort());
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = question.value.trim();
    status.replaceChildren();
    if (!text) {
      status.append(notice("error", "Type a question first: it is empty."));
      return;
    }
    if (activeChat) return;
    thread.append(messageView("user", text).el);
    const answer = messageView("assistant", "");
    answer.el.setAttribute("aria-busy", "true");
    thread.append(answer.el);
    question.value = "";
    const controller = new AbortController();
    activeChat = { controller };
    askBtn.disabled = true;
    stopBtn.disabled = false;
    answer.metaEl.textContent = "Searching your notes…";
    const started = performance.now();
    let firstToken = null;
    let finished = false;
    try {
      const resp = await request("POST", "/api/v1/chat", { question: text, conversation_id: conversation || null }, controller.signal);
      await readEvents(resp, (name, data) => {
        if (name === "token") {
          if (firstToken === null) {
            firstToken = performance.now() - started;
            answer.metaEl.textContent = "Writing…";
          }
          answer.body.append(data.text);
        } else if (name === "citation") {
          answer.chips.append(chip(data));
        } else if (name === "done") {
          finished = true;
          const was = conversation;
          conversation = data.conversation_id || conversation;
          answer.metaEl.textContent = `${data.completion_tokens} tokens · first token ${Math.round(firstToken ?? 0)} ms · ${Math.round(data.duration_ms)} ms` +
            (data.finish_reason === "length" ? " · cut at the token limit" : "");
          if (!answer.chips.childElementCount && data.sources?.length) {
            answer.chips.append(h("span", { class: "muted small" }, "Closest notes: "), data.sources.map(chip));
          }
          if (!was && conversation) history.replaceState(null, "", `#/ask/${conversation}`);
        } else if (name === "error") {
          finished = true;
          answer.metaEl.replaceChildren(notice("error", data.message || "The answer failed."));
        }
      });
      if (!finished) answer.metaEl.replaceChildren(notice("error", "The answer stopped early: the connection closed."));
    } catch (err) {
      if (err.name === "AbortError") {
        answer.metaEl.textContent = "Stopped.";
        answer.el.classList.add("stopped");
      } else {
        answer.el.remove();
        status.append(notice("error", err instanceof ApiError ? err.message : `The answer failed: ${err.message}`));
        if (err instanceof ApiError && (err.status === 0 || err.status >= 502)) setBanner(err.message);
      }
    } finally {
      answer.el.removeAttribute("aria-busy");
      activeChat = null;
      askBtn.disabled = false;
      stopBtn.disabled = true;
      question.focus();
    }
  });
  question.focus();
}

// -- Capture -------------------------------------------------------------------------------------------------------

async function pageCapture() {
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
      library = null;
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

// -- Document ------------------------------------------------------------------------------------------------------

async function pageDocument(id, params) {
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
          h("div", { class: "meta mono" }, d.path, a ? ` · cited lines ${lines(a, b)}` : ""),
          h("div", { class: "meta" }, d.type ? h("span", { class: "tag" }, d.type) : null, d.tags.map((t) => h("span", { class: "tag" }, `#${t}`)),
            d.project ? ` project ${d.project}` : "", ` · updated ${ago(d.updated_at)}`)),
        fm && Object.keys(fm).length ? h("details", { class: "frontmatter", open: true }, h("summary", {}, `Frontmatter (lines 1-${v.frontmatter_lines})`),
          h("dl", {}, Object.entries(fm).map(([k, val]) => [h("dt", {}, k), h("dd", {}, Array.isArray(val) ? val.join(", ") : typeof val === "object" && val !== null ? JSON.stringify(val) : String(val))]))) : null,
        h("div", { class: "tabs", role: "tablist" }, tabR, tabS), rendered, source,
        v.truncated ? notice("info", `Showing lines ${v.from_line}-${v.from_line + v.lines.length - 1} of ${v.total_lines}.`) : null),
      h("aside", {},
        h("h2", {}, "Related notes"), related,
        h("h2", {}, "What the index sees"), h("p", { class: "muted small" }, `${v.chunks.length} chunks`), chunks)));
    const first = main.querySelector(".block.cited");
    if (first) first.scrollIntoView({ block: "center" });
    guarded(async () => {
      const r = await api("GET", `/api/v1/related?document_id=${encodeURIComponent(d.document_id)}&limit=8`);
      if (!r.related.length) related.append(h("li", { class: "muted small" }, "None yet."));
      for (const x of r.related) related.append(h("li", {}, h("a", { href: docLink(x.document_id) }, x.title || x.path), h("span", { class: "muted small" }, ` ${x.score.toFixed(2)}`)));
    }, related);
  });
}

// -- Library -------------------------------------------------------------------------------------------------------

async function pageLibrary() {
  const counts = h("section", {});
  const path = h("input", { id: "i-path", name: "path", placeholder: "/home/me/notes", required: true, style: "min-width: 22rem" });
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
        h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "file"), h("th", {}, "state"), h("th", {}, "chunks"), h("th", {}, "reason"))),
          h("tbody", {}, j.files.slice(0, 200).map((f) => h("tr", {},
            h("td", { class: "mono" }, f.document_id ? h("a", { href: docLink(f.document_id) }, f.path) : f.path),
            h("td", { class: `state-${f.state}` }, f.state), h("td", {}, `${f.chunks_embedded}/${f.chunks}`), h("td", {}, f.reason || (f.warnings || []).join("; ")))))));
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
      library = null;
      while (await loadJobs()) await new Promise((r) => setTimeout(r, 1000));
    }, status);
  });

  await guarded(async () => {
    library = null;
    const lib = await getLibrary();
    counts.replaceChildren(h("p", {}, `${lib.documents} documents · ${lib.chunks} chunks · ${lib.chunks_embedded} embedded`),
      h("div", { class: "row", style: "align-items: start; gap: 2rem" }, table("Projects", lib.projects), table("Types", lib.types), table("Tags", lib.tags.slice(0, 40))));
    await loadJobs();
  });
}

// -- Map: clusters, the weekly review, stale notes -------------------------------------------------------------------

async function pageMap(params) {
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

// -- Status --------------------------------------------------------------------------------------------------------

async function pageStatus() {
  show(h("h1", {}, "Status"), h("p", { class: "muted" }, "Asking every service…"));
  await guarded(async () => {
    const resp = await fetch("/api/v1/status", { headers: headers(false) });
    if (resp.status === 401) {
      await request("GET", "/api/v1/status"); // asks for the key
      return pageStatus();
    }
    const s = await resp.json();
    if (s.error) throw new ApiError(resp.status, s.error.message);
    const gpu = s.gpu || {};
    show(h("h1", {}, "Status"),
      notice(s.ok ? "ok" : "error", s.ok ? "Every service is serving." : "Something is down: see below."),
      h("h2", {}, "Services"),
      h("table", {}, h("thead", {}, h("tr", {}, ["service", "state", "instances", "address", "uptime", "detail"].map((x) => h("th", {}, x)))),
        h("tbody", {}, (s.services || []).map((x) => h("tr", {}, h("td", {}, x.service), h("td", { class: `state-${x.status}` }, x.status),
          h("td", {}, String(x.instances ?? "?")), h("td", { class: "mono" }, x.address), h("td", {}, x.uptime_s != null ? `${Math.round(x.uptime_s)} s` : ""), h("td", {}, x.detail || ""))))),
      h("h2", {}, "Infrastructure"),
      h("table", {}, h("tbody", {}, (s.infra || []).map((x) => h("tr", {}, h("td", {}, x.name), h("td", { class: `state-${x.status}` }, x.status), h("td", {}, x.detail))))),
      h("h2", {}, "GPU leases"),
      gpu.error ? notice("error", gpu.error) : h("div", {},
        h("p", {}, gpu.cpu_only ? "No GPU: the scheduler runs CPU-only." : `${(gpu.devices || []).length} device(s).`),
        (gpu.devices || []).length ? h("table", {}, h("tbody", {}, gpu.devices.map((dv) => h("tr", {}, h("td", {}, `${dv.index}: ${dv.name}`),
          h("td", {}, `${(dv.granted_bytes / 2 ** 30).toFixed(1)} of ${(dv.total_bytes / 2 ** 30).toFixed(1)} GiB granted`), h("td", {}, dv.source))))) : null,
        (gpu.leases || []).length ? h("table", {}, h("thead", {}, h("tr", {}, ["service", "device", "priority", "MiB", "expires"].map((x) => h("th", {}, x)))),
          h("tbody", {}, gpu.leases.map((l) => h("tr", {}, h("td", {}, l.service), h("td", {}, l.device), h("td", {}, l.priority), h("td", {}, String(Math.round(l.bytes / 2 ** 20))), h("td", {}, l.expires_at)))))
          : h("p", { class: "muted small" }, "No leases held."),
        (gpu.queue || []).length ? h("p", {}, `${gpu.queue.length} waiting for a lease.`) : null),
      s.gateway ? h("p", { class: "muted small" }, `Gateway: ${s.gateway.open_streams} open answer streams.`) : null);
  });
}

// -- Router --------------------------------------------------------------------------------------------------------

async function route() {
  const [path, query] = (location.hash.slice(1) || "/search").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const page = parts[0] || "search";
  for (const a of document.querySelectorAll(".top nav a[data-page]")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (activeChat && page !== "ask") activeChat.controller.abort();
  document.title = `${page[0].toUpperCase()}${page.slice(1)} · Tessera`;
  const pages = {
    search: () => pageSearch(params),
    ask: () => pageAsk(parts[1] ? decodeURIComponent(parts[1]) : ""),
    capture: () => pageCapture(),
    doc: () => pageDocument(decodeURIComponent(parts[1] || ""), params),
    library: () => pageLibrary(),
    map: () => pageMap(params),
    status: () => pageStatus(),
  };
  main.dataset.page = page;
  main.setAttribute("aria-busy", "true");
  try {
    await (pages[page] || (() => show(h("h1", {}, "Not found"), h("p", {}, "There is no such page. "), h("a", { href: "#/search" }, "Search"))))();
  } finally {
    main.removeAttribute("aria-busy");
  }
}

window.addEventListener("hashchange", route);
route();
