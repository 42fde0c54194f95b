// The page's DOM helpers: elements, notices, formatting.

// -- DOM -----------------------------------------------------------------------------------------------------------

export const main = document.getElementById("main");
export const banner = document.getElementById("banner");

/** An element: h("a", {href: "#"}, "text", child, ...); attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
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

export function field(label, input, hint) {
  if (!input.id) input.id = "f-" + label.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("div", { class: "field" }, h("label", { for: input.id }, label), input, hint ? h("span", { class: "muted small" }, hint) : null);
}

/** A labelled progress bar; ``setProgress(bar, pct)`` moves it. */
export function progressBar(label) {
  return h("div", { class: "progress", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" },
    h("div", { style: "width: 0%" }));
}

export function setProgress(bar, pct) {
  bar.setAttribute("aria-valuenow", String(pct));
  bar.firstChild.style.width = `${pct}%`;
}

export function notice(kind, text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function show(...nodes) {
  main.replaceChildren(...nodes);
}

export function fmtScore(x) {
  return Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(3);
}

export function lines(a, b) {
  return a === b ? `${a}` : `${a}-${b}`;
}

/** A note's path as a person reads it: from its project's folder on (or from `root`, an import's folder), else its folder
 * and file name; the full path stays in the tooltip and is what a copy takes. */
export function shortPath(path, project, root) {
  if (!path) return "";
  if (root && path.startsWith(root.replace(/\/+$/, "") + "/")) return path.slice(root.replace(/\/+$/, "").length + 1);
  const at = project ? path.lastIndexOf(`/${project}/`) : -1;
  if (at >= 0) return path.slice(at + project.length + 2);
  const parts = path.split("/").filter(Boolean);
  return parts.length > 2 ? `…/${parts.slice(-2).join("/")}` : path;
}

/** The short path in an element whose tooltip is the full one; copying it copies the full path. */
export function pathLabel(path, project, suffix = "", root = "") {
  const el = h("span", { class: "path", title: path + suffix }, shortPath(path, project, root) + suffix);
  el.addEventListener("copy", (e) => {
    e.clipboardData?.setData("text/plain", path + suffix);
    e.preventDefault();
  });
  return el;
}

/** A data table that scrolls sideways inside itself when the screen is narrower than its columns (the page never
 * does): a labelled region that the keyboard can focus and scroll. */
export function tableRegion(label, table) {
  return h("div", { class: "table-scroll", tabindex: "0", role: "region", "aria-label": label }, table);
}

export function docLink(id, a, b) {
  return `#/doc/${encodeURIComponent(id)}` + (a ? `?lines=${lines(a, b || a)}` : "");
}

export function ago(iso) {
  const t = Date.parse(iso);
  if (!t) return "";
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 90) return "just now";
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129600) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleDateString();
}
