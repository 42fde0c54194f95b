// Tessera's web page: ES modules, no framework, no build step, nothing fetched from any other host.
// Pages are hash routes (#/search, #/ask, #/capture, #/quick, #/doc/<id>, #/library, #/map, #/status) over the gateway's JSON API;
// each view is a module under views/.

import { h, main, show } from "./views/dom.js";
import { pageSearch } from "./views/search.js";
import { activeChat, pageAsk } from "./views/ask.js";
import { pageCapture } from "./views/capture.js";
import { pageDocument } from "./views/document.js";
import { pageLibrary } from "./views/library.js";
import { pageMap } from "./views/map.js";
import { pageStatus } from "./views/status.js";
import { flush, pageQuick } from "./views/quick.js";

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
    quick: () => pageQuick(params),
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

// Quick capture's outbox goes out when the network returns, when the page opens, and every half minute.
window.addEventListener("online", () => flush());
setInterval(() => navigator.onLine && flush(), 30000);
flush();
// The page as an installable app that opens offline (sw.js); where service workers are not allowed (plain HTTP to
// another host), the page works as before, without them.
if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
