"""A malicious page in headless Chromium: served from another origin on loopback (another local program's port, the
same *site* as the gateway), it tries to read and write the knowledge base of a person who is signed in to the page.
It gets nothing: every request it makes is refused, and nothing is written (issue 28)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from helpers import ServiceProcess

from shared.client import Client
from shared.ops.infra import free_port
from shared.runtime import secrets
from shared.runtime.config import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

ATTACK = """<!doctype html><title>cute cats</title>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="POST" action="@GATEWAY@/api/v1/notes" enctype="text/plain" target="sink">
  <input name='{"title":"pwned-form","body":"written by a page","x":"' value='"}'></form>
<img id="img" src="@GATEWAY@/api/v1/documents">
<script>
window.results = {};
const BASE = "@GATEWAY@";
async function attempt(name, fn) { try { results[name] = await fn(); } catch (e) { results[name] = "blocked: " + e; } }
(async () => {
  await attempt("fetch_read", async () => { const r = await fetch(BASE + "/api/v1/documents", {credentials: "include"});
                                            return r.status + " " + (await r.text()).slice(0, 200); });
  await attempt("fetch_write", async () => { const r = await fetch(BASE + "/api/v1/notes", {method: "POST", credentials: "include",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify({title: "pwned-fetch", body: "written by a page"})});
      return r.status; });
  await attempt("nocors_write", async () => { const r = await fetch(BASE + "/api/v1/notes", {method: "POST", mode: "no-cors",
      credentials: "include", headers: {"Content-Type": "text/plain"}, body: JSON.stringify({title: "pwned-nocors", body: "x"})});
      return r.type; });
  await attempt("xhr_read", () => new Promise((resolve) => { const x = new XMLHttpRequest(); x.withCredentials = true;
      x.open("GET", BASE + "/api/v1/search?q=kettle"); x.onload = () => resolve("read " + x.status + " " + x.responseText.slice(0, 100));
      x.onerror = () => resolve("blocked: xhr error"); x.send(); }));
  await attempt("ingest", async () => { const r = await fetch(BASE + "/api/v1/ingest", {method: "POST", mode: "no-cors", credentials: "include",
      headers: {"Content-Type": "text/plain"}, body: JSON.stringify({path: "/root"})}); return r.type; });
  await attempt("sse", () => new Promise((resolve) => { const es = new EventSource(BASE + "/api/v1/watch", {withCredentials: true});
      es.onmessage = (m) => { es.close(); resolve("read " + m.data.slice(0, 100)); };
      es.onerror = () => { es.close(); resolve("blocked: event stream error"); }; }));
  document.getElementById("f").submit();
  await new Promise((r) => setTimeout(r, 1500));
  await attempt("iframe_read", async () => { try { return "read " + window.frames.sink.document.body.innerText.slice(0, 100); }
                                             catch (e) { return "blocked: " + e.name; } });
  results.done = true;
})();
</script>"""


@pytest.fixture(scope="module")
def evil_site(infra: Settings) -> Iterator[str]:
    page = ATTACK.replace("@GATEWAY@", f"http://127.0.0.1:{infra.gateway_port}").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cats.html"
    server.shutdown()


async def test_a_page_of_another_local_origin_reads_and_writes_nothing(infra: Settings, mesh: dict[str, ServiceProcess],
                                                                        home_notes: Path, evil_site: str) -> None:
    from playwright.async_api import async_playwright

    # A protection check is never skipped: without a browser this fails and says how to get one.
    assert CHROMIUM is not None, "no Chromium: `make test` installs Debian's chromium package (apt-get install -y chromium, as root)"
    gateway = f"http://127.0.0.1:{infra.gateway_port}"
    answered: list[tuple[str, int]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            context = await browser.new_context()
            page = await context.new_page()
            # The person is signed in: the page's session cookie is in this browser (127.0.0.1, any port: one site).
            await page.goto(secrets.login_link(infra))
            await page.wait_for_url(f"{gateway}/")
            assert (await page.evaluate("fetch('/api/v1/documents').then(r => r.status)")) == 200  # the page itself may
            page.on("response", lambda r: answered.append((r.url, r.status)) if r.url.startswith(gateway) else None)
            await page.goto(evil_site)
            await page.wait_for_function("window.results && window.results.done === true", timeout=30_000)
            results = await page.evaluate("window.results")
        finally:
            await browser.close()
    for name in ("fetch_read", "fetch_write", "xhr_read", "sse", "iframe_read"):
        assert str(results[name]).startswith("blocked"), (name, results)
    assert answered and all(status in (401, 403) for _, status in answered), answered  # refused, not merely unreadable
    async with Client(infra) as client:
        for title in ("pwned-form", "pwned-fetch", "pwned-nocors"):
            assert not (await client.search(title, mode="lexical", bypass_cache=True)).hits, title
        jobs = await client.jobs(limit=50, include_files=False)
    assert not [j for j in jobs.jobs if j.root == "/root"]
