// The Ask view (#/ask): a streamed answer with its citations, a conversation kept.

import { ago, docLink, field, h, lines, notice, show } from "./dom.js";
import { api, ApiError, guarded, request, setBanner } from "./api.js";

// -- Ask -----------------------------------------------------------------------------------------------------------

/** Parse a text/event-stream body, calling onEvent(name, data) for each event. */
export async function readEvents(resp, onEvent) {
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

export function chip(c) {
  return h("a", { class: "chip", href: docLink(c.document_id, c.line_start, c.line_end), title: `${c.path}:${lines(c.line_start, c.line_end)}` },
    `[${c.number}] ${c.title || c.path.split("/").pop()} · ${lines(c.line_start, c.line_end)}`);
}

/** The answer's sentences marked: each supported one followed by a link to the lines that support it (the document
 * opens with them highlighted), each unsupported one underlined and said to be so. */
export function annotate(body, sentences) {
  const text = body.textContent;
  if (!sentences?.length) return;
  const parts = [];
  let pos = 0;
  for (const s of sentences) {
    if (s.start < pos || s.end > text.length) continue;
    parts.push(text.slice(pos, s.start));
    const piece = text.slice(s.start, s.end);
    if (s.support === "unsupported") {
      parts.push(h("span", { class: "unsupported", title: "No source supports this sentence" }, piece,
        h("span", { class: "sr-only" }, " (no source supports this sentence)")));
    } else if (s.support === "supported" && s.source) {
      const where = `${s.source.title || s.source.path.split("/").pop()}, lines ${lines(s.source.line_start, s.source.line_end)}`;
      parts.push(h("span", { class: "supported" }, piece), h("a", { class: "evidence", href: docLink(s.source.document_id, s.source.line_start, s.source.line_end),
        title: `Supported by ${where}`, "aria-label": `Evidence: ${where}` }, "↗"));
    } else {
      parts.push(piece);
    }
    pos = s.end;
  }
  parts.push(text.slice(pos));
  body.replaceChildren(...parts);
}

export function messageView(role, text, citations, meta, sentences) {
  const body = h("div", { class: "text" }, text);
  annotate(body, sentences);
  const chips = h("div", { class: "chips", role: "group", "aria-label": "citations" }, (citations || []).map(chip));
  const metaEl = h("div", { class: "meta" }, meta || "");
  const el = h("article", { class: `msg ${role}`, "aria-label": role === "user" ? "you asked" : "answer" }, body, chips, metaEl);
  return { el, body, chips, metaEl };
}

export let activeChat = null; // {controller} of the answer being streamed

// Whose conversations the list shows: a person's own by default; the tools' runs (`tessera eval`, the benches) on asking.
const PURPOSES = { user: "Mine", eval: "Evaluations", bench: "Benchmarks", all: "All" };
let listPurpose = "user";

/** The open conversation's title with Rename and Delete (each confirmed in place, no browser dialog). */
function conversationHead(head, c, reload) {
  const url = `/api/v1/conversations/${encodeURIComponent(c.conversation_id)}`;
  const status = h("div", { "aria-live": "polite" });
  const idle = () => {
    const rename = h("button", { type: "button" }, "Rename");
    const remove = h("button", { type: "button" }, "Delete");
    head.replaceChildren(h("h2", { class: "conv-title", title: c.title }, c.title || "(untitled)"),
      h("div", { class: "row" }, rename, remove), status);
    rename.addEventListener("click", () => {
      const input = h("input", { id: "conv-title", name: "title", value: c.title, maxlength: "200", required: true });
      const form = h("form", { class: "row" }, field("Title", input), h("button", { type: "submit", class: "primary" }, "Save"),
        h("button", { type: "button", onclick: idle }, "Cancel"));
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        guarded(async () => {
          const renamed = await api("PATCH", url, { title: input.value.trim() });
          c.title = renamed.title;
          idle();
          reload();
        }, status);
      });
      head.replaceChildren(form, status);
      input.focus();
    });
    remove.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger" }, "Delete");
      head.replaceChildren(h("p", { role: "alert" }, `Delete “${c.title || "(untitled)"}” and its ${c.messages.length} messages? This cannot be undone.`),
        h("div", { class: "row" }, yes, h("button", { type: "button", onclick: idle }, "Cancel")), status);
      yes.addEventListener("click", () => guarded(async () => {
        await api("DELETE", url);
        location.hash = "#/ask";
      }, status));
      yes.focus();
    });
  };
  idle();
}

export async function pageAsk(conversationId) {
  const list = h("ul", {});
  const thread = h("div", { class: "thread", "aria-live": "polite" });
  const question = h("textarea", { id: "question", name: "question", rows: "3", placeholder: "Ask your notes…", class: "short" });
  const askBtn = h("button", { type: "submit", class: "primary" }, "Ask");
  const stopBtn = h("button", { type: "button", id: "stop", disabled: true }, "Stop");
  const status = h("div", { "aria-live": "polite" });
  const researchBox = h("input", { type: "checkbox", id: "research" });
  const researchToggle = h("label", { for: "research", class: "small", title: "The model plans up to three searches, runs each, then answers from all they found" },
    researchBox, " Research (several searches, slower)");
  const form = h("form", { class: "stack" }, field("Question", question), h("div", { class: "row" }, askBtn, stopBtn, researchToggle), status);
  let conversation = conversationId || "";
  const purpose = h("select", { id: "conv-purpose", name: "purpose" },
    Object.entries(PURPOSES).map(([value, label]) => h("option", { value }, label)));
  purpose.value = listPurpose;
  const head = h("div", { class: "conv-head" });
  show(h("div", { class: "ask" },
    h("aside", { "aria-label": "conversations" }, h("h2", {}, "Conversations"), h("a", { href: "#/ask", class: "chip" }, "+ New conversation"),
      field("Show", purpose), list),
    h("section", {}, h("h1", {}, "Ask"), head, thread, form)));

  const loadList = () => guarded(async () => {
    const res = await api("GET", `/api/v1/conversations?limit=50&purpose=${encodeURIComponent(listPurpose)}`);
    list.replaceChildren();
    if (!res.conversations.length) list.append(h("li", { class: "muted small" }, "None yet."));
    for (const c of res.conversations) {
      list.append(h("li", {}, h("a", { href: `#/ask/${c.conversation_id}`, "aria-current": c.conversation_id === conversation ? "true" : null, title: c.title },
        c.title || "(untitled)", h("span", { class: "muted small" }, ` · ${ago(c.updated_at || c.created_at)}`))));
    }
  }, list);
  purpose.addEventListener("change", () => {
    listPurpose = purpose.value;
    loadList();
  });
  loadList();

  if (conversation) {
    await guarded(async () => {
      const c = await api("GET", `/api/v1/conversations/${encodeURIComponent(conversation)}`);
      conversationHead(head, c, loadList);
      for (const m of c.messages) thread.append(messageView(m.role, m.content, m.citations, "", m.sentences).el);
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
      const mode = researchBox.checked ? "research" : "answer";
      const steps = h("ol", { class: "steps small muted", "aria-label": "research steps" });
      if (mode === "research") answer.el.insertBefore(steps, answer.body);
      const resp = await request("POST", "/api/v1/chat", { question: text, conversation_id: conversation || null, mode }, controller.signal);
      await readEvents(resp, (name, data) => {
        if (name === "token") {
          if (firstToken === null) {
            firstToken = performance.now() - started;
            answer.metaEl.textContent = "Writing…";
          }
          answer.body.append(data.text);
        } else if (name === "citation") {
          answer.chips.append(chip(data));
        } else if (name === "step") {
          const words = { plan: "Planned", search: "Searched", covered: "Enough found", bound: "Stopped" }[data.kind] || data.kind;
          steps.append(h("li", {}, `${words}: ${data.text.split("\n").join(" · ")}` + (data.kind === "search" ? ` (${data.new_sources} new)` : "")));
          answer.metaEl.textContent = "Researching…";
        } else if (name === "done") {
          finished = true;
          const was = conversation;
          conversation = data.conversation_id || conversation;
          answer.metaEl.textContent = `${data.completion_tokens} tokens · first token ${Math.round(firstToken ?? 0)} ms · ${Math.round(data.duration_ms)} ms` +
            (data.finish_reason === "length" ? " · cut at the token limit" : "");
          if (data.text) answer.body.textContent = data.text; // unsupported sentences left out: the stored answer
          annotate(answer.body, data.sentences);
          const unsupported = (data.sentences || []).filter((x) => x.support === "unsupported").length;
          if (unsupported) answer.metaEl.append(` · ${unsupported} sentence${unsupported === 1 ? "" : "s"} no source supports`);
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
