// Tessera's service worker: the page's own files (HTML, CSS, modules, icons) kept on the device, so the page opens
// without a network and Quick capture can queue notes there. Served by the gateway at /sw.js with the list of files and
// a version (their hash) filled in: a new version replaces the old cache. The API is never cached: it goes to the
// network, and a note made offline waits in the page's outbox (views/quick.js), not here.

const VERSION = "__VERSION__";
const SHELL = __SHELL__;
const CACHE = `tessera-shell-${VERSION}`;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("tessera-shell-") && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// The page's files: the network first (so a running gateway's newest page is used), the device's copy when offline.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  const shell = url.pathname === "/" || url.pathname.startsWith("/web/") || url.pathname === "/manifest.webmanifest";
  if (!shell) return; // the API, /login, /docs, /mcp: straight to the network, never stored
  event.respondWith(fetch(event.request).then((resp) => {
    if (resp.ok) {
      const copy = resp.clone();
      caches.open(CACHE).then((cache) => cache.put(url.pathname === "/" ? "/" : event.request, copy));
    }
    return resp;
  }).catch(() => caches.match(url.pathname === "/" ? "/" : event.request).then((hit) => hit || Response.error())));
});
