"""The web page in a real browser: Debian's headless Chromium driven by Playwright, against the session's mesh.

The journey: capture a note → it becomes searchable → search finds it → ask streams an answer that cites it →
the citation opens the note at the cited lines, highlighted. Stop cancels an answer and frees the model slot. The
key prompt of a gateway with API keys. No request leaves loopback. A screenshot of each page is saved under the
data directory (and under TESSERA_SCREENSHOTS_DIR when set, which is how docs/screenshots was made); axe-core
checks each page's accessibility.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from helpers import EXTENSION, Launcher, ServiceProcess, extension_origin, filler, service_ports, wait_serving

from shared.client import Client, NotFound
from shared.runtime import secrets
from shared.runtime.config import PROJECT_ROOT, Settings, load_settings, settings_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
NOTE_BODY = ("# Feeding the starter\n\nFeed the rye sourdough starter named Gunther twice a day: 50 g rye flour and 50 g "
             "water at 8:00 and at 20:00.\n\n## Before baking\n\nGunther is ready when it has doubled within six hours "
             "and smells of yoghurt.\n")


class Recorder:
    """Every request the browser makes; any to a host that is not loopback is refused and kept."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.outside: list[str] = []

    async def handle(self, route: Any) -> None:
        url = route.request.url
        self.urls.append(url)
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in LOOPBACK:
            self.outside.append(url)
            await route.abort()
            return
        await route.continue_()


@pytest.fixture(scope="module")
def shots(infra: Settings) -> Iterator[list[Path]]:
    folder = infra.path("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    saved: list[Path] = []
    yield saved
    extra = os.environ.get("TESSERA_SCREENSHOTS_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        for path in saved:
            shutil.copy(path, Path(extra) / path.name)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "no Chromium: `make test` installs Debian's chromium package (apt-get install -y chromium, as root)"
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        await b.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[tuple[Any, Recorder]]:
    # bypass_csp only so that the test can inject axe-core; the page itself loads nothing inline.
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    recorder = Recorder()
    await context.route("**/*", recorder.handle)
    pg = await context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg, recorder
    await context.close()
    assert not errors, f"the page threw: {errors}"
    assert not recorder.outside, f"requests left loopback: {recorder.outside}"


async def sign_in(pg: Any, infra: Settings) -> None:
    """Open the page through a one-time login link, as `make run` prints it: the session cookie, then the page."""
    await pg.goto(secrets.login_link(infra))
    await pg.wait_for_url(f"http://127.0.0.1:{infra.gateway_port}/")


async def shot(pg: Any, infra: Settings, saved: list[Path], name: str) -> None:
    from playwright.async_api import Error as PlaywrightError

    path = infra.path("screenshots") / f"{name}.png"
    # Chromium cannot capture a page taller than its texture limit (about 16,384 px): the map of a library the other tests
    # filled, in random order, is longer. The top 12,000 px are kept.
    height = await pg.evaluate("document.documentElement.scrollHeight")
    width = await pg.evaluate("document.documentElement.scrollWidth")
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, 12_000)}
    try:
        await pg.screenshot(path=str(path), full_page=True, clip=clip)
    except PlaywrightError:
        # Chromium's software compositor on a 2-core CI runner sometimes cannot capture a tall page (a capture error,
        # not a page error): the screenshot is a record for a person to look at, so the visible part is kept instead
        await pg.wait_for_timeout(500)
        await pg.screenshot(path=str(path))
    saved.append(path)


async def axe(pg: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    await pg.add_script_tag(path=str(AXE))
    result = await pg.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


async def chat_busy(infra: Settings) -> int:
    async with Client(infra) as client:
        return int((await client.chat_model()).busy)


@pytest.fixture(scope="module")
def gw(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path) -> str:
    return f"http://127.0.0.1:{infra.gateway_port}"


async def test_journey_capture_search_ask_cite(gw: str, page: tuple[Any, Recorder], infra: Settings, shots: list[Path]) -> None:
    pg, recorder = page
    await sign_in(pg, infra)
    a11y: dict[str, list[dict[str, Any]]] = {}

    # Capture.
    await pg.goto(f"{gw}/#/capture")
    await pg.get_by_label("Title").fill("Sourdough starter Gunther")
    await pg.get_by_label("Tags").fill("baking, sourdough")
    await pg.get_by_label("Project", exact=True).fill("webtest")
    await pg.get_by_label("Body (markdown)").fill(NOTE_BODY)
    await pg.get_by_role("tab", name="Preview").click()
    await pg.locator(".preview h1", has_text="Feeding the starter").wait_for()
    await pg.get_by_role("tab", name="Write").click()
    a11y["capture"] = await axe(pg)
    await pg.get_by_role("button", name="Save note").click()
    opened = pg.locator("#open-note")
    await opened.wait_for(timeout=90_000)
    assert "Searchable now" in await pg.locator("[role=status]").first.inner_text()
    await shot(pg, infra, shots, "capture")
    href = await opened.get_attribute("href")
    assert href and href.startswith("#/doc/")
    doc_id = href.removeprefix("#/doc/").split("?")[0]

    # Search: the note is found, matched words are highlighted, each signal has a score; the keyboard moves and opens.
    await pg.goto(f"{gw}/#/search")
    await pg.get_by_label("Query").fill("how often to feed the rye starter")
    await pg.get_by_label("Query").press("Enter")
    first = pg.locator(".hit").first
    await first.wait_for()
    assert "Sourdough starter Gunther" in await first.locator(".title").inner_text()
    marks = [m.lower() for m in await first.locator("mark").all_inner_texts()]
    assert {"feed", "rye", "starter"} <= set(marks), marks
    signals = await first.locator(".signals").inner_text()
    assert "lexical" in signals and "vector" in signals and "score" in signals
    assert ".md:" in await first.locator(".where").inner_text()
    a11y["search"] = await axe(pg)
    await shot(pg, infra, shots, "search")
    await pg.keyboard.press("Escape")
    await pg.locator("body").click(position={"x": 5, "y": 300})
    await pg.keyboard.press("/")
    assert await pg.evaluate("document.activeElement.id") == "q"
    await pg.keyboard.press("ArrowDown")
    assert await pg.evaluate("document.activeElement.classList.contains('hit')")
    await pg.keyboard.press("Enter")
    await pg.wait_for_url(f"**/#/doc/{doc_id}?lines=*")
    await pg.locator(".block.cited").first.wait_for()

    # Ask: tokens arrive one by one; citations are chips; the chip opens the cited lines, highlighted.
    await pg.goto(f"{gw}/#/ask")
    await pg.get_by_label("Question").fill("How often do I feed the sourdough starter Gunther, and with what?")
    await pg.get_by_role("button", name="Ask", exact=True).click()
    answer = pg.locator(".msg.assistant").last
    await pg.wait_for_function("document.querySelector('.msg.assistant .text')?.childNodes.length >= 3", timeout=120_000)
    await answer.locator(".meta", has_text="tokens").wait_for(timeout=180_000)
    assert await answer.locator(".text").evaluate("el => el.childNodes.length") > 3  # appended token by token
    chip = answer.locator(".chip").first
    await chip.wait_for()
    hrefs = await answer.locator(".chip").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert any(h.startswith(f"#/doc/{doc_id}?lines=") for h in hrefs), f"the answer does not cite the captured note: {hrefs}"
    a11y["ask"] = await axe(pg)
    await shot(pg, infra, shots, "ask")
    conversation_url = pg.url
    assert "#/ask/" in conversation_url  # the conversation keeps its id for follow-ups

    cite = answer.locator(f".chip[href^='#/doc/{doc_id}']").first
    await cite.click()
    await pg.wait_for_url(f"**/#/doc/{doc_id}?lines=*")
    cited = pg.locator(".block.cited")
    await cited.first.wait_for()
    text = " ".join(await cited.all_inner_texts())
    assert "Gunther" in text or "starter" in text
    assert await cited.first.is_visible()
    assert await pg.locator(".frontmatter dt", has_text="title").count() == 1  # frontmatter shown
    assert await pg.locator("aside table tbody tr").count() >= 1  # what the index sees: the chunks
    a11y["document"] = await axe(pg)
    await shot(pg, infra, shots, "document")

    # A follow-up continues the conversation; past conversations are listed.
    await pg.goto(conversation_url)
    await pg.locator(".msg.user").first.wait_for()
    before = await pg.locator(".msg").count()
    await pg.get_by_label("Question").fill("And when is it ready for baking?")
    await pg.get_by_role("button", name="Ask", exact=True).click()
    await pg.locator(".msg.assistant").last.locator(".meta", has_text="tokens").wait_for(timeout=180_000)
    assert await pg.locator(".msg").count() == before + 2
    assert pg.url == conversation_url
    await pg.goto(f"{gw}/#/search")
    await pg.goto(conversation_url)
    await pg.locator(".msg").nth(before + 1).wait_for()
    assert await pg.locator("aside a[aria-current=true]").count() == 1

    # Library and Status.
    await pg.goto(f"{gw}/#/library")
    await pg.locator("details summary").first.wait_for()
    assert "webtest" in await pg.locator("main").inner_text()
    a11y["library"] = await axe(pg)
    await shot(pg, infra, shots, "library")
    await pg.goto(f"{gw}/#/status")
    await pg.get_by_role("heading", name="GPU leases").wait_for()
    status = await pg.locator("main").inner_text()
    assert "SERVING" in status and "scheduler" in status
    assert "Background work" in status and "chunks wait" in status and "documents wait" in status
    a11y["status"] = await axe(pg)
    await shot(pg, infra, shots, "status")

    # Map: clusters (or why there are none yet), the weekly review rendered, stale notes.
    await pg.goto(f"{gw}/#/map")
    await pg.get_by_role("heading", name="Stale notes").wait_for()
    await pg.locator("#clusters, main p:has-text('No clusters yet')").first.wait_for()
    await pg.get_by_role("button", name="Preview this week's review").click()
    await pg.locator("#review-body h2", has_text="Questions to explore").wait_for()
    assert "null" not in (await pg.locator("main").inner_text()).split()
    a11y["map"] = await axe(pg)
    await shot(pg, infra, shots, "map")

    assert not any(a11y.values()), f"axe-core: {a11y}"
    hosts = {urlparse(u).hostname for u in recorder.urls if urlparse(u).scheme.startswith("http")}
    assert hosts == {"127.0.0.1"}, hosts


MAP_NOTES = {
    "sourdough": ["Feed the rye starter twice a day with equal weights of flour and water.",
                  "A starter that doubles within six hours is ready to bake with.",
                  "Proof the sourdough loaf overnight in the fridge for a more sour crumb."],
    "raft": ["A Raft follower becomes a candidate when its election timeout passes without a heartbeat.",
             "The Raft leader commits a log entry once a majority of followers stored it.",
             "Raft elections need an odd number of members to avoid split votes."],
    "css": ["CSS grid places items in rows and columns with grid-template-columns.",
            "Flexbox aligns items along one axis with justify-content and align-items.",
            "A CSS media query changes the layout below a given viewport width."],
}


async def test_the_map_draws_every_note_and_opens_one(gw: str, page: tuple[Any, Recorder], infra: Settings, shots: list[Path]) -> None:
    """The map as a picture: a dot for every note of the project, coloured by cluster, the weeks on a slider; a click opens
    the note."""
    import psycopg

    pg, _ = page
    project = f"maptest-{uuid.uuid4().hex[:6]}"
    async with Client(infra) as client:
        ids = [(await client.capture(f"{topic} {i}", text, project=project, force=True)).document_id
               for topic, texts in MAP_NOTES.items() for i, text in enumerate(texts)]
        async with await psycopg.AsyncConnection.connect(secrets.database_url(infra), autocommit=True) as conn:
            end = time.monotonic() + 120
            while (await (await conn.execute("SELECT count(*) FROM documents WHERE project = %s AND embedded", (project,))).fetchone())[0] < 9:
                assert time.monotonic() < end, "the map's notes were not embedded in time"
                await asyncio.sleep(0.2)
            # three of them are older: the slider's first week shows only those
            await conn.execute("UPDATE documents SET created_at = now() - interval '21 days' WHERE id = ANY(%s::uuid[])", (ids[:3],))
        m = await client.map(project=project, rebuild=True, points=True)
    assert len(m.points) == 9 and m.runs[0].documents == 9 and m.runs[0].clusters >= 2, m.runs
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/map?project={project}")
    dots = pg.locator("svg.map circle.dot")
    await dots.nth(8).wait_for()
    assert await dots.count() == 9
    assert len({await dots.nth(i).get_attribute("fill") for i in range(9)}) == m.runs[0].clusters  # coloured by cluster
    assert await pg.locator("svg.map text.cluster-name").count() == m.runs[0].clusters
    caption = await pg.locator("figure.map-figure figcaption").inner_text()
    assert "9 notes" in caption and "silhouette" in caption, caption
    await pg.locator("figure.map-figure input[type=range]").evaluate("(el) => { el.value = 0; el.dispatchEvent(new Event('input')); }")
    assert "3 of 9 notes" in await pg.locator("figure.map-figure .row").inner_text()
    assert await pg.locator("svg.map circle.dot:visible").count() == 3
    problems = await axe(pg)
    await shot(pg, infra, shots, "map-picture")
    assert not problems, f"axe-core: {problems}"
    first = pg.locator("svg.map circle.dot:visible").first
    doc_id, title = await first.get_attribute("data-document-id"), await first.get_attribute("aria-label")
    await first.click()
    await pg.wait_for_url(f"**/#/doc/{doc_id}**")
    await pg.get_by_role("heading", name=title).first.wait_for()


async def test_stop_cancels_generation_and_frees_the_slot(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    pg, _ = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/ask")
    await pg.get_by_label("Question").fill("Write a very long and detailed essay about descaling kettles, with many steps.")
    await pg.get_by_role("button", name="Ask", exact=True).click()
    await pg.wait_for_function("document.querySelector('.msg.assistant .text')?.childNodes.length >= 2", timeout=120_000)
    assert await chat_busy(infra) >= 1
    await pg.get_by_role("button", name="Stop").click()
    await pg.locator(".msg.assistant .meta", has_text="Stopped.").wait_for(timeout=5_000)
    deadline = time.monotonic() + 3  # under chat's 5 s stall timeout: the slot is freed by the cancel, not by the stall
    busy = await chat_busy(infra)
    while busy and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        busy = await chat_busy(infra)
    assert busy == 0, "the model slot was not freed after Stop"
    assert await pg.get_by_role("button", name="Stop").is_disabled()


async def test_bad_input_is_a_clear_message(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    pg, _ = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/search?q=")
    assert "query is empty" in await pg.locator("main [role=alert]").inner_text()
    await pg.goto(f"{gw}/#/library")
    await pg.get_by_label("Folder or file").fill("/etc")
    await pg.get_by_role("button", name="Ingest").click()
    alert = pg.locator("main [role=alert]")
    await alert.wait_for()
    assert "outside" in (await alert.inner_text()).lower() or "root" in (await alert.inner_text()).lower()
    await pg.goto(f"{gw}/#/capture")
    await pg.get_by_label("Title").fill("big")
    await pg.get_by_label("Body (markdown)").fill("x" * 600_000)
    await pg.get_by_role("button", name="Save note").click()
    assert "too large" in await pg.locator("main [role=alert]").inner_text()
    await pg.goto(f"{gw}/#/ask")
    await pg.get_by_role("button", name="Ask", exact=True).click()
    assert "empty" in await pg.locator("main [role=alert]").inner_text()
    # The gateway unreachable (the connection refused at the browser): the page says so instead of failing silently.
    await pg.goto(f"{gw}/#/search")
    await pg.route("**/api/v1/search", lambda route: route.abort("connectionrefused"))
    await pg.get_by_label("Query").fill("kettle")
    await pg.get_by_label("Query").press("Enter")
    await pg.locator("#banner").wait_for()
    assert "not answering" in await pg.locator("#banner").inner_text()
    await pg.unroute("**/api/v1/search")
    await pg.goto(f"{gw}/#/doc/not-a-document")
    await pg.locator("main [role=alert]", has_text="no document").wait_for()


async def test_docs_work_offline(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    pg, recorder = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/docs")
    await pg.locator(".swagger-ui .info .title", has_text="Tessera").wait_for(timeout=30_000)
    await pg.locator(".opblock-summary-path", has_text="/api/v1/search").first.wait_for()
    assert any("/docs/assets/swagger-ui-bundle.js" in u for u in recorder.urls)


async def test_first_paint_and_every_asset_local(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    pg, recorder = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/")
    await pg.locator("main h1").wait_for()
    # The paint entry is reported after the frame is presented, which can come after the heading is in the DOM.
    with contextlib.suppress(PlaywrightTimeout):
        await pg.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10_000)
    paint = await pg.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null")
    assert paint is not None
    print(f"first contentful paint: {paint:.0f} ms")
    assert {urlparse(u).path for u in recorder.urls} >= {"/", "/web/app.js", "/web/app.css"}


@pytest.fixture(scope="module")
def keyed_gateway(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path, launcher: Launcher) -> Iterator[str]:
    ports = service_ports()
    env = {**settings_env(infra), "TESSERA_GATEWAY_PORT": ports["TESSERA_GATEWAY_PORT"],
           "TESSERA_GATEWAY_GRPC_PORT": ports["TESSERA_GATEWAY_GRPC_PORT"], "TESSERA_GATEWAY_API_KEYS": "web-key-1"}
    settings = load_settings(env)
    proc = launcher.start("gateway", settings)
    wait_serving(settings, [proc])
    yield f"http://127.0.0.1:{settings.gateway_port}"
    proc.stop()


async def test_key_prompt(keyed_gateway: str, page: tuple[Any, Recorder]) -> None:
    pg, recorder = page
    await pg.goto(f"{keyed_gateway}/#/search?q=kettle")
    dialog = pg.locator("#key-dialog")
    await dialog.wait_for()
    assert "needs an API key" in await dialog.inner_text()
    await pg.get_by_label("Key", exact=True).fill("wrong-key")
    await pg.get_by_role("button", name="Use this key").click()
    await pg.locator("#key-message", has_text="not valid").wait_for()
    await pg.get_by_label("Key", exact=True).fill("web-key-1")
    await pg.get_by_role("button", name="Use this key").click()
    await pg.locator(".hit").first.wait_for()
    # exchanged for an HttpOnly, SameSite=Strict cookie: the page keeps no key a script could read
    assert await pg.evaluate("sessionStorage.getItem('tessera.api_key')") is None
    assert "tessera_session" not in await pg.evaluate("document.cookie")
    cookies = [c for c in await pg.context.cookies() if c["name"] == "tessera_session"]
    assert cookies and cookies[0]["httpOnly"] and cookies[0]["sameSite"] == "Strict"
    assert not any("web-key-1" in u for u in recorder.urls)  # never in a URL


# -- every width (issue 41) ----------------------------------------------------------------------------------------

WIDTHS = (390, 768, 1280)
#: A note that tests the layout: a long title, a long unbroken token (a URL) and a long path, as real notes have.
WIDE_URL = "https://docs.example.org/ovens/manual?id=" + "a1b2c3d4e5f6" * 10
WIDE_BODY = ("# Tuning the bread oven\n\nPreheat the bread oven stone for forty minutes at 250 degrees before the first "
             f"loaf (manual: {WIDE_URL}).\n\n## Steam\n\nPour a cup of water on the lava rocks for steam in the first ten minutes of the bake. "
             f"The oven's manual is at {WIDE_URL}.\n")
WIDE_TITLE = "Tuning the bread oven, its baking stone and the steam it needs for a crust that sings as it cools"
#: What each view is ready on: (route, selector), {conversation}, {doc} and {project} filled in.
VIEWS = {
    "search": ("#/search?q=preheat+the+bread+oven+stone&project={project}", ".hit"),
    "ask": ("#/ask/{conversation}", ".msg.assistant"),
    "capture": ("#/capture", "button:has-text('Save note')"),
    "quick": ("#/quick", "button:has-text('Save')"),
    "library": ("#/library", "details summary"),
    "map": ("#/map?project={project}", "main h2:has-text('Stale notes')"),
    "status": ("#/status", "main h2:has-text('GPU leases')"),
    "document": ("#/doc/{doc}?lines={lines}", ".block.cited"),
}
#: Text boxes and page width, from the DOM: each visible text node's line boxes, clipped by every ancestor that clips
#: (overflow not visible), compared pairwise (sorted by top, so only boxes that share rows are compared). Text inside an
#: SVG picture (the map's labels) is left out.
LAYOUT_JS = """() => {
  const clipOf = (el) => {
    let c = { l: -1e9, t: -1e9, r: 1e9, b: 1e9 };
    for (let e = el; e && e !== document.documentElement; e = e.parentElement) {
      const cs = getComputedStyle(e);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') {
        const b = e.getBoundingClientRect();
        c = { l: Math.max(c.l, b.left), t: Math.max(c.t, b.top), r: Math.min(c.r, b.right), b: Math.min(c.b, b.bottom) };
      }
    }
    return c;
  };
  const boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || el.closest('svg, script, style, .skip')) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility === 'hidden' || Number(cs.opacity) === 0) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const c = clipOf(el);
    for (const q of range.getClientRects()) {
      const r = { l: Math.max(q.left, c.l), t: Math.max(q.top, c.t), r: Math.min(q.right, c.r), b: Math.min(q.bottom, c.b) };
      if (r.r - r.l >= 1 && r.b - r.t >= 1) boxes.push({ ...r, node: n });
    }
  }
  boxes.sort((a, b) => a.t - b.t);
  const overlaps = [];
  for (let i = 0; i < boxes.length && overlaps.length < 10; i++) {
    for (let j = i + 1; j < boxes.length && boxes[j].t < boxes[i].b - 2; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.node === b.node) continue;
      if (Math.min(a.r, b.r) - Math.max(a.l, b.l) > 2 && Math.min(a.b, b.b) - Math.max(a.t, b.t) > 2) {
        overlaps.push([a.node.textContent.trim().slice(0, 40), b.node.textContent.trim().slice(0, 40)]);
      }
    }
  }
  return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, overlaps, boxes: boxes.length };
}"""


async def layout(pg: Any) -> dict[str, Any]:
    result: dict[str, Any] = await pg.evaluate(LAYOUT_JS)
    return result


@pytest.fixture(scope="module")
async def wide_note(infra: Settings, mesh: dict[str, ServiceProcess]) -> dict[str, str]:
    """A project with the layout's test note, a person's conversation about it (renamed to a long title) and an eval run's."""
    project = f"widths-{uuid.uuid4().hex[:6]}"
    async with Client(infra) as client:
        doc = (await client.capture(WIDE_TITLE, WIDE_BODY, tags=["baking", "oven"], project=project, force=True)).document_id
        end = time.monotonic() + 120
        while not (found := await client.search("preheat the bread oven stone", project=project, mode="vector", bypass_cache=True)).hits:
            assert time.monotonic() < end, "the layout note was never embedded"
            await asyncio.sleep(0.3)
        first = found.hits[0].source
        answer = await client.ask("How long do I preheat the bread oven stone before the first loaf?", project=project, max_tokens=48)
        assert answer.done is not None and answer.text
        mine = answer.done.conversation_id
        await client.rename_conversation(mine, f"{WIDE_TITLE} ({project})")
        run = await client.ask("What is the oven's steam for?", project=project, max_tokens=8, purpose="eval")
        assert run.done is not None
    return {"project": project, "doc": doc, "conversation": mine, "eval_conversation": run.done.conversation_id,
            "lines": f"{first.line_start}-{first.line_end}"}


@pytest.mark.parametrize("width", WIDTHS)
async def test_every_view_fits_the_width(gw: str, page: tuple[Any, Recorder], infra: Settings, shots: list[Path],
                                         wide_note: dict[str, str], width: int) -> None:
    """At a phone's, a tablet's and a laptop's width, each view: nothing wider than the viewport, no text over other
    text, no serious axe violation, and a screenshot kept (screenshots/w<width>-<view>.png)."""
    pg, _ = page
    await pg.set_viewport_size({"width": width, "height": 900})
    await sign_in(pg, infra)
    problems: dict[str, Any] = {}
    for view, (route, ready) in VIEWS.items():
        await pg.goto(f"{gw}/" + route.format(**wide_note))
        await pg.locator(ready).first.wait_for(timeout=60_000)
        await pg.wait_for_function("!document.querySelector('main').hasAttribute('aria-busy')")
        await pg.wait_for_timeout(150)  # the lists a view loads after its first paint
        found = await layout(pg)
        if found["scrollWidth"] > found["innerWidth"]:
            problems[f"{view}: page wider than the viewport"] = (found["scrollWidth"], found["innerWidth"])
        if found["overlaps"]:
            problems[f"{view}: text over text"] = found["overlaps"]
        if violations := await axe(pg):
            problems[f"{view}: axe"] = violations
        assert found["boxes"] > 10, f"{view}: the check saw almost no text ({found['boxes']} boxes)"
        await shot(pg, infra, shots, f"w{width}-{view}")
    assert not problems, f"at {width} px: {problems}"
    if width <= 640:
        nav = await pg.locator("header.top").bounding_box()
        link = await pg.locator("header.top nav a").first.bounding_box()
        assert nav and link and nav["height"] < 2.2 * link["height"], f"the navigation takes more than one row: {nav}, {link}"


async def test_paths_show_from_the_project_with_the_full_path_on_hover(gw: str, page: tuple[Any, Recorder], infra: Settings,
                                                                        wide_note: dict[str, str]) -> None:
    pg, _ = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/search?q=preheat+the+bread+oven+stone&project={wide_note['project']}")
    where = pg.locator(".hit .where .path").first
    await where.wait_for()
    shown, full = await where.inner_text(), await where.get_attribute("title")
    assert full and full.startswith("/") and f"/{wide_note['project']}/" in full, full
    assert not shown.startswith("/") and wide_note["project"] not in shown and shown.endswith(full.rsplit("/", 1)[1]), (shown, full)


async def test_the_list_holds_a_persons_conversations_and_they_can_be_renamed_and_deleted(
        gw: str, page: tuple[Any, Recorder], infra: Settings, wide_note: dict[str, str]) -> None:
    """Eval and bench runs stay out of the default list (the filter shows them); a conversation is renamed and deleted
    from the page."""
    pg, _ = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/ask")
    listed = pg.locator("aside[aria-label=conversations] li a")
    await listed.first.wait_for()
    hrefs = await listed.evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert f"#/ask/{wide_note['conversation']}" in hrefs and f"#/ask/{wide_note['eval_conversation']}" not in hrefs
    await pg.get_by_label("Show").select_option("eval")
    await pg.locator(f"aside a[href='#/ask/{wide_note['eval_conversation']}']").wait_for()
    assert await pg.locator(f"aside a[href='#/ask/{wide_note['conversation']}']").count() == 0
    await pg.get_by_label("Show").select_option("user")  # the choice stays while the page is open

    # rename, then delete, a conversation of its own (the others' tests keep theirs)
    async with Client(infra) as client:
        own = (await client.ask("What is the oven's steam for?", project=wide_note["project"], max_tokens=8)).done
    assert own is not None
    await pg.goto(f"{gw}/#/ask/{own.conversation_id}")
    await pg.get_by_role("button", name="Rename").click()
    await pg.get_by_label("Title").fill("Steam in the bread oven")
    await pg.get_by_role("button", name="Save").click()
    await pg.locator(".conv-head h2", has_text="Steam in the bread oven").wait_for()
    await pg.locator(f"aside a[href='#/ask/{own.conversation_id}']", has_text="Steam in the bread oven").wait_for()
    await pg.get_by_role("button", name="Delete").click()
    assert "cannot be undone" in await pg.locator(".conv-head [role=alert]").inner_text()
    await pg.locator(".conv-head").get_by_role("button", name="Delete").click()
    await pg.wait_for_url(f"{gw}/#/ask")
    async with Client(infra) as client:
        with pytest.raises(NotFound):
            await client.conversation(own.conversation_id)


async def test_a_note_is_deleted_from_its_page(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    pg, _ = page
    async with Client(infra) as client:
        made = await client.capture("Damson gin", "Damson gin wants three months in the dark.", project=f"webdel-{uuid.uuid4().hex[:6]}")
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/doc/{made.document_id}")
    await pg.get_by_role("button", name="Delete note").click()
    assert "cannot be undone" in await pg.locator(".doc-actions [role=alert]").inner_text()
    await pg.locator(".doc-actions").get_by_role("button", name="Delete", exact=True).click()
    await pg.wait_for_url(f"**/#/library?deleted={made.document_id}")
    async with Client(infra) as client:
        with pytest.raises(NotFound):
            await client.document(made.document_id)
    assert not Path(made.path).exists()


async def test_a_note_is_edited_from_its_page(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    """Edit note: the form holds the note as it is; saved, it is indexed again and shown; an edit against a note changed
    meanwhile (another tab) is refused with the reason, and the other tab's change stays."""
    pg, _ = page
    project = f"webedit-{uuid.uuid4().hex[:6]}"
    async with Client(infra) as client:
        made = await client.capture("Sloe gin", "Sloe gin wants the first frost.", project=project, tags=["gin"])
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/doc/{made.document_id}")
    await pg.get_by_role("button", name="Edit note").click()
    assert await pg.get_by_label("Title").input_value() == "Sloe gin"
    assert "first frost" in await pg.get_by_label("Body (markdown)").input_value()
    await pg.get_by_label("Tags").fill("gin, autumn")
    await pg.get_by_label("Body (markdown)").fill("# Sloe gin\n\nPrick the sloes and add sugar; bottle at Christmas.")
    await pg.get_by_role("button", name="Save").click()
    await pg.locator(".blocks", has_text="bottle at Christmas").wait_for(timeout=120_000)
    assert await pg.locator(".doc-head .tag", has_text="#autumn").count() == 1
    assert "bottle at Christmas" in Path(made.path).read_text()

    # opened for editing, then changed elsewhere: saving is refused and says why
    await pg.get_by_role("button", name="Edit note").click()
    async with Client(infra) as client:
        await client.edit_note(made.document_id, title="Sloe gin (changed elsewhere)")
    await pg.get_by_label("Title").fill("Sloe gin, mine")
    await pg.get_by_role("button", name="Save").click()
    await pg.locator("#edit-form [role=alert]", has_text="changed since it was opened").wait_for()
    assert "Sloe gin (changed elsewhere)" in Path(made.path).read_text()


async def test_an_upload_from_the_page_resumes_where_it_stopped(gw: str, page: tuple[Any, Recorder], infra: Settings, tmp_path: Path) -> None:
    """Upload a file (tus) from the Capture page with the connection cut at 60 %: the page retries, then offers Resume,
    which goes on from the gateway's offset; cut again, the tab reloaded and the same file chosen again goes on too. No
    part is sent twice from the start, and the stored file has the file's sha256."""
    import hashlib

    pg, _ = page
    word = f"hygrometer{uuid.uuid4().hex[:6]}"
    data = filler(word, 320 * 1024)  # 5 parts of 64 KiB
    src = tmp_path / f"{word}.md"
    src.write_bytes(data)
    limit = [3 * 64 * 1024]  # 60 %
    offsets: list[int] = []

    async def cut(route: Any) -> None:  # a part sent from past the limit never arrives, as over a dropped connection
        if route.request.method == "PATCH":
            at = int(route.request.headers.get("upload-offset", "0"))
            offsets.append(at)
            if at >= limit[0]:
                await route.abort("connectionreset")
                return
        await route.fallback()

    await pg.route("**/api/v1/uploads/**", cut)
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/capture")
    project = f"webupload-{uuid.uuid4().hex[:6]}"
    await pg.get_by_label("File").set_input_files(str(src))
    await pg.get_by_label("Upload to project").fill(project)
    await pg.get_by_role("button", name="Upload", exact=True).click()
    await pg.locator("#resume-upload").wait_for(timeout=60_000)
    assert "The upload stopped at 60 %" in await pg.locator("#upload-form [role=alert]").inner_text()

    limit[0] = 4 * 64 * 1024  # Resume goes on, and is cut again at 80 %
    await pg.locator("#resume-upload").click()
    await pg.locator("#upload-form", has_text="Resumed at 60 %").wait_for(timeout=30_000)
    await pg.locator("#resume-upload").wait_for(timeout=60_000)
    assert "The upload stopped at 80 %" in await pg.locator("#upload-form [role=alert]").inner_text()

    limit[0] = len(data) + 1  # the tab is reloaded, the connection is back: the same file again goes on from 80 %
    await pg.reload()
    await pg.get_by_label("File").set_input_files(str(src))
    await pg.get_by_label("Upload to project").fill(project)
    await pg.get_by_role("button", name="Upload", exact=True).click()
    await pg.locator("#upload-form", has_text="Resumed at 80 %").wait_for(timeout=30_000)
    link = pg.locator("#open-upload")
    await link.wait_for(timeout=300_000)
    assert offsets.count(0) == 1 and offsets == sorted(offsets), offsets
    doc_id = (await link.get_attribute("href") or "").split("/doc/")[1].split("?")[0]
    async with Client(infra) as client:
        stored = Path((await client.document(doc_id)).path)
    assert stored.parent == infra.path("imports", "uploads") and stored.name.endswith(f"{word}.md")
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    async with Client(infra) as client:  # 320 KiB of readings: no other test's search should meet them
        await client.delete_document(doc_id)



@pytest.fixture(scope="module")
def article() -> Iterator[str]:
    """A page of another site (another loopback port) with text to select: the URL of /article.html."""
    import http.server
    import threading

    html = (b"<!doctype html><html><head><title>Fermenting hot sauce</title></head><body><h1>Fermenting hot sauce</h1>"
            b"<p id='tip'>Keep the mash under a 3 percent brine at 18 degrees for two weeks.</p><p>Then blend and bottle.</p></body></html>")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/article.html"
    server.shutdown()


async def project_notes(infra: Settings, project: str, want: int, settle_s: float = 1.5) -> list[Any]:
    end = time.monotonic() + 120
    async with Client(infra) as client:
        while len(docs := (await client.documents(project=project, limit=50)).documents) < want:
            assert time.monotonic() < end, f"{len(docs)} notes in {project}, not {want}"
            await asyncio.sleep(0.3)
        await asyncio.sleep(settle_s)  # a second copy would have arrived by now
        return list((await client.documents(project=project, limit=50)).documents)


async def test_quick_capture_offline_is_sent_once_when_the_network_returns(gw: str, page: tuple[Any, Recorder], infra: Settings) -> None:
    """The page is an installable app (no installability errors); offline, it still opens (the service worker) and a
    quick capture waits on the device; back online, it is sent, and arrives once."""
    pg, _ = page
    project = f"quick-{uuid.uuid4().hex[:6]}"
    await pg.set_viewport_size({"width": 390, "height": 800})
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/quick")
    await pg.wait_for_function("navigator.serviceWorker.ready.then(() => !!navigator.serviceWorker.controller)", timeout=30_000)
    cdp = await pg.context.new_cdp_session(pg)
    errors = (await cdp.send("Page.getInstallabilityErrors"))["installabilityErrors"]
    assert [e for e in errors if e["errorId"] != "in-incognito"] == [], errors  # Playwright's contexts are incognito ones
    manifest = await cdp.send("Page.getAppManifest")
    assert not manifest["errors"] and "Quick capture" in manifest["data"], manifest

    await pg.context.set_offline(True)
    await pg.reload()  # offline: the device's copy of the page
    await pg.get_by_label("Note").fill(f"Buy rye flour for the starter ({project})")
    await pg.get_by_label("Project").fill(project)
    await pg.get_by_role("button", name="Save").click()
    await pg.locator("#q-status", has_text="sent when the network returns").wait_for()
    assert "1 note on this device" in await pg.locator("#q-waiting").inner_text()
    await pg.reload()  # still offline, and still waiting after the page was closed and opened again
    await pg.locator("#q-waiting", has_text="1 note on this device").wait_for()

    await pg.context.set_offline(False)
    await pg.locator("#q-status", has_text="Sent: Buy rye flour").wait_for(timeout=60_000)
    assert await pg.locator("#q-waiting").inner_text() == ""
    docs = await project_notes(infra, project, 1)
    assert len(docs) == 1 and docs[0].title.startswith("Buy rye flour"), docs


async def test_the_bookmarklet_opens_quick_capture_with_the_selection(gw: str, page: tuple[Any, Recorder], infra: Settings,
                                                                      article: str) -> None:
    """The bookmarklet, run on another site's page, opens Quick capture in a window of its own with the selection, the
    address and the title; saved, the note keeps the address (no cross-origin request was made by the other page)."""
    pg, rec = page
    project = f"bookmarklet-{uuid.uuid4().hex[:6]}"
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/quick")
    href = await pg.locator("#bookmarklet").get_attribute("href")
    assert href and href.startswith("javascript:")
    from urllib.parse import unquote

    await pg.goto(article)
    await pg.evaluate("() => { const r = document.createRange(); r.selectNodeContents(document.getElementById('tip')); "
                      "getSelection().removeAllRanges(); getSelection().addRange(r); }")
    async with pg.expect_popup() as popped:
        await pg.evaluate(unquote(href.removeprefix("javascript:")))  # what a click on the bookmark runs
    quick = await popped.value
    await quick.get_by_role("button", name="Save").wait_for()
    assert "3 percent brine" in await quick.get_by_label("Note").input_value()
    assert await quick.get_by_label("Title").input_value() == "Fermenting hot sauce"
    await quick.get_by_label("Project").fill(project)
    await quick.get_by_role("button", name="Save").click()
    await quick.locator("#q-status", has_text="Sent: Fermenting hot sauce").wait_for(timeout=60_000)
    docs = await project_notes(infra, project, 1)
    assert len(docs) == 1 and f"url: {article}" in Path(docs[0].path).read_text()
    assert not [u for u in rec.urls if u.startswith(article.rsplit("/", 1)[0]) and "/api/" in u]



async def test_the_browser_extension_saves_a_selection_and_finds_it(gw: str, infra: Settings, article: str, tmp_path: Path,
                                                                     shots: list[Path]) -> None:
    """The unpacked extension (clients/browser) in headless Chromium: the key pasted once in its options, text selected
    on another site's page, saved from the popup with a project and a tag, then found from the popup's search. The
    gateway accepts the extension's origin because the configuration names it; another extension's is refused."""
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None
    project, word = f"extension-{uuid.uuid4().hex[:6]}", f"habanero{uuid.uuid4().hex[:4]}"
    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", f"--disable-extensions-except={EXTENSION}", f"--load-extension={EXTENSION}"])
        try:
            worker = context.service_workers[0] if context.service_workers else await context.wait_for_event("serviceworker", timeout=30_000)
            origin = "/".join(worker.url.split("/")[:3])
            assert origin == extension_origin(), (origin, extension_origin())

            options = await context.new_page()
            await options.goto(f"{origin}/options.html")
            assert await options.locator("#origin").inner_text() == origin
            await options.get_by_label("The gateway's address").fill(gw)
            await options.get_by_label("API key").fill(secrets.read(infra, "admin-key") or "")
            await options.get_by_role("button", name="Save").click()
            await options.locator("#status", has_text="Saved").wait_for()
            await options.close()

            reading = await context.new_page()
            await reading.goto(article)
            await reading.evaluate(f"""() => {{ const tip = document.getElementById('tip'); tip.textContent += ' The {word} mash is hottest.';
              const r = document.createRange(); r.selectNodeContents(tip); getSelection().removeAllRanges(); getSelection().addRange(r); }}""")
            popup = await context.new_page()  # as the toolbar opens it; the tab it reads is the one read last
            await popup.goto(f"{origin}/popup.html")
            await popup.locator("#from", has_text="The selection").wait_for()
            assert article in await popup.locator("#from").inner_text()
            assert await popup.get_by_label("Title").input_value() == "Fermenting hot sauce"
            await popup.get_by_label("Tags").fill("sauce, ferment")
            await popup.get_by_label("Project").fill(project)
            await popup.get_by_role("button", name="Save selection").click()
            await popup.locator("#save-status.ok", has_text="Saved to").wait_for(timeout=60_000)

            docs = await project_notes(infra, project, 1)
            text = Path(docs[0].path).read_text()
            assert f"url: {article}" in text and "> Keep the mash under a 3 percent brine" in text and "- ferment" in text
            end = time.monotonic() + 120
            while True:  # searchable once embedded: the popup's search finds it
                await popup.get_by_label("Search your notes").fill(f"{word} mash")
                await popup.get_by_role("button", name="Search").click()
                await popup.locator("#hits li").first.wait_for()
                if await popup.locator("#hits a", has_text="Fermenting hot sauce").count():
                    await popup.set_viewport_size({"width": 360, "height": 620})
                    await popup.screenshot(path=str(infra.path("screenshots") / "extension-popup.png"))
                    shots.append(infra.path("screenshots") / "extension-popup.png")
                    break
                assert time.monotonic() < end, await popup.locator("#hits").inner_text()
                await asyncio.sleep(1)
        finally:
            await context.close()
    # only the configured extension: another extension's origin is refused, with the setting to change
    async with httpx.AsyncClient(timeout=30) as http:
        other = await http.post(f"{gw}/api/v1/search", json={"query": word}, headers={
            "Authorization": f"Bearer {secrets.read(infra, 'admin-key')}", "Origin": "chrome-extension://" + "a" * 32})
    assert other.status_code == 403 and "TESSERA_GATEWAY_ALLOWED_ORIGINS" in other.json()["error"]["message"]


async def test_an_answer_shows_which_sentences_its_sources_support(gw: str, page: tuple[Any, Recorder], infra: Settings, pool: Any) -> None:
    """A stored answer (as chat stores one) with a supported sentence and one no source supports: the page underlines
    the unsupported one and says so; the supported one links to its lines, which the note's page highlights."""
    from services.chat.store import ChatStore, NewTurn

    pg, _ = page
    async with Client(infra) as client:
        made = await client.capture("Kombucha", "Brew kombucha for seven days.\n\nThen bottle it with ginger for two more days.",
                                    project=f"support-{uuid.uuid4().hex[:6]}", force=True)
    answer = "Bottle it with ginger for two more days [1]. The moon decides how fizzy it gets."
    split = answer.index(" The moon") + 1
    line = next(i for i, text in enumerate(Path(made.path).read_text().splitlines(), 1) if text.startswith("Then bottle"))
    source = {"chunk_id": "", "document_id": made.document_id, "title": "Kombucha", "path": made.path, "line_start": line,
              "line_end": line, "char_start": 0, "char_end": 0, "heading_path": []}
    sentences = [{"start": 0, "end": split - 1, "support": "supported", "number": 1, "share": 1.0, "source": source},
                 {"start": split, "end": len(answer), "support": "unsupported", "number": 0, "share": 0.2, "source": None}]
    store, conversation, message = ChatStore(pool, "test-web"), str(uuid.uuid4()), str(uuid.uuid4())
    await store.store_question(NewTurn(conversation, True, "When do I bottle kombucha?", "When do I bottle kombucha?", 10), message)
    await store.store_answer(conversation, message, answer, [{"number": 1, **source, "score": 0.9, "origin": "model"}], "stop", 20, sentences)

    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/ask/{conversation}")
    unsupported = pg.locator(".msg.assistant .unsupported")
    await unsupported.wait_for()
    assert (await unsupported.inner_text()).startswith("The moon decides how fizzy it gets.")
    assert await unsupported.get_attribute("title") == "No source supports this sentence"
    evidence = pg.locator(".msg.assistant a.evidence")
    assert await evidence.count() == 1 and f"lines {line}" in (await evidence.get_attribute("aria-label") or "")
    await evidence.click()
    await pg.locator(".block.cited", has_text="Then bottle it with ginger").wait_for()


async def test_research_mode_shows_its_steps_before_the_answer(gw: str, page: tuple[Any, Recorder], infra: Settings, home_notes: Path) -> None:
    """Research on the Ask page: the plan and the searches are listed as they happen, then the answer with its sources."""
    pg, _ = page
    await sign_in(pg, infra)
    await pg.goto(f"{gw}/#/ask")
    await pg.get_by_label("Research (several searches, slower)").check()
    await pg.get_by_label("Question").fill("How do I descale the kettle, and how often should the bike chain be lubricated?")
    await pg.get_by_role("button", name="Ask", exact=True).click()
    steps = pg.locator(".msg.assistant ol.steps li")
    await steps.first.wait_for(timeout=60_000)
    assert (await steps.first.inner_text()).startswith("Planned:")
    await pg.locator(".msg.assistant .chips .chip").first.wait_for(timeout=120_000)
    await pg.locator(".msg.assistant .meta", has_text="tokens").wait_for(timeout=120_000)
