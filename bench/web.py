"""The web page's first paint on loopback, in Debian's headless Chromium, against an isolated mesh with SciFact.

Each page is loaded cold (a new browser context: no cache) ``--loads`` times. Measured: first contentful paint,
and the time until the page's content is there (the search hits, the library counts, the status table). The
baseline, measured in the same run, is Swagger UI at /docs: a well-known page served by the same gateway.

The last line is JSON: ``first_paint_ms_p50`` (the worst page's median), ``docs_first_paint_ms_p50``, ``ratio``
(pages / docs), and per page ``paint_ms_p50`` and ``content_ms_p50``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import percentile, scifact_mesh

from shared.runtime.config import Settings
from shared.tools.eval_beir import load_beir

ROOT = Path(__file__).resolve().parent.parent
PAGES = {  # hash route → what shows the content is there
    "search": ("#/search?q=vitamin+D+deficiency", ".hit"),
    "ask": ("#/ask", "#question"),
    "capture": ("#/capture", "#c-title"),
    "library": ("#/library", "main details summary"),
    "status": ("#/status", "main table"),
}
PAINT = "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"


async def measure(url: str, loads: int, settings: Settings) -> dict[str, dict[str, float]]:
    from playwright.async_api import async_playwright

    from services.gateway.edge import SESSION_COOKIE, Sessions
    from shared.runtime import secrets

    # Each cold load is a signed-in person's: the session cookie a one-time login link gives, set up front.
    session = Sessions(secrets.ensure(settings, secrets.SESSION_KEY), 1).issue()

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("bench-web: no Chromium (apt-get install -y chromium)")
    out: dict[str, dict[str, float]] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-dev-shm-usage"])
        targets = {**PAGES, "docs (baseline)": ("docs", ".swagger-ui .info .title")}
        samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in targets}
        for _ in range(loads):
            for name, (route, ready) in targets.items():
                context = await browser.new_context()
                await context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": url, "httpOnly": True, "sameSite": "Strict"}])
                page = await context.new_page()
                started = asyncio.get_running_loop().time()
                await page.goto(f"{url}/{route}")
                await page.locator(ready).first.wait_for(timeout=60_000)
                content = (asyncio.get_running_loop().time() - started) * 1000
                paint = await page.evaluate(PAINT)
                samples[name][0].append(paint)
                samples[name][1].append(content)
                await context.close()
        await browser.close()
    for name, (paints, contents) in samples.items():
        out[name] = {"paint_ms_p50": round(percentile(paints, 0.5), 1), "paint_ms_p95": round(percentile(paints, 0.95), 1),
                     "content_ms_p50": round(percentile(contents, 0.5), 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--limit", type=int, default=300, help="SciFact documents to ingest")
    parser.add_argument("--loads", type=int, default=15, help="cold loads per page")
    args = parser.parse_args()
    corpus, _, _ = load_beir(Path(args.data), "train")
    corpus = dict(list(corpus.items())[:args.limit])
    with scifact_mesh(corpus) as settings:
        results = asyncio.run(measure(f"http://127.0.0.1:{settings.gateway_port}", args.loads, settings))
    print(f"{'page':<18}{'paint p50':>11}{'paint p95':>11}{'content p50':>13}  (ms, {args.loads} cold loads each)")
    for name, r in results.items():
        print(f"{name:<18}{r['paint_ms_p50']:>11}{r['paint_ms_p95']:>11}{r['content_ms_p50']:>13}")
    baseline = results.pop("docs (baseline)")
    worst = max(r["paint_ms_p50"] for r in results.values())
    print(json.dumps({"first_paint_ms_p50": worst, "docs_first_paint_ms_p50": baseline["paint_ms_p50"],
                      "ratio": round(worst / baseline["paint_ms_p50"], 3) if baseline["paint_ms_p50"] > 0 else None,
                      "loads": args.loads, "pages": results}))


if __name__ == "__main__":
    main()
