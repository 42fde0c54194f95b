"""Runs the load scenarios of tests/load/*.json against a mesh and prints a JSON summary (last line).

    make load                                   # an isolated mesh: started, loaded, stopped
    python tests/load/run.py --running          # the mesh of the current settings (make run)
    python tests/load/run.py search_mixed.json  # some scenarios only

Every scenario is bounded (a total or a duration) and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import isolated_settings, tessera  # noqa: E402

from shared.client import Client  # noqa: E402
from shared.runtime.config import Settings, load_settings  # noqa: E402
from shared.tools.eval_beir import load_beir, write_corpus  # noqa: E402
from shared.tools.load import make_target, parse_duration, render_text, run_load, summarize  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


async def ingest(settings: Settings, folder: str, project: str) -> Any:
    """Ingest a folder through the client SDK and wait until every file is done."""
    async with Client(settings) as client:
        return await client.ingest(folder, project=project)


def substitute(data: Any, folder: str) -> Any:
    if isinstance(data, str):
        return data.replace("{folder}", folder)
    if isinstance(data, list):
        return [substitute(d, folder) for d in data]
    if isinstance(data, dict):
        return {k: substitute(v, folder) for k, v in data.items()}
    return data


async def run_scenario(settings: Settings, path: Path, folder: str) -> dict[str, Any]:
    spec = json.loads(path.read_text())
    target = make_target(ROOT / spec["proto"], [], spec["call"], substitute(spec["data"], folder))
    results = await run_load(target, settings.address(spec["service"]), concurrency=spec.get("concurrency", 4),
                             total=spec.get("total"), duration=parse_duration(spec["duration"]) if "duration" in spec else None,
                             rps=spec.get("rps"), connections=spec.get("connections", 1), timeout=parse_duration(spec.get("timeout", "30s")))
    return {"scenario": spec["name"], **summarize(results, target)}


def notes_folder(settings: Settings, docs: int) -> Path:
    folder = settings.path("imports", "load-notes")
    if SCIFACT.is_dir():
        corpus, _, _ = load_beir(SCIFACT, "train")
        write_corpus(dict(list(corpus.items())[:docs]), folder)
    else:  # the scenarios still run on a few notes of their own
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(docs):
            (folder / f"note-{i}.md").write_text(f"# Note {i}\n\nStatins lower cholesterol; vitamin D and bones, note {i}.\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", help="scenario files (default: every tests/load/*.json)")
    parser.add_argument("--running", action="store_true", help="use the running mesh of the current settings")
    parser.add_argument("--docs", type=int, default=200, help="SciFact abstracts to ingest first")
    args = parser.parse_args()
    files = [HERE / s if not Path(s).is_absolute() else Path(s) for s in args.scenarios] or sorted(HERE.glob("*.json"))
    settings = load_settings() if args.running else isolated_settings()
    if not args.running:
        print(f"starting an isolated mesh in {settings.path()} …", flush=True)
        tessera(settings, "up", "--timeout", "300")
    summary: dict[str, Any] = {}
    try:
        folder = notes_folder(settings, args.docs)
        job = asyncio.run(ingest(settings, str(folder), "load"))
        print(f"ingested {job.counts.files} files, {job.counts.chunks_embedded} chunks", flush=True)
        for f in files:
            result = asyncio.run(run_scenario(settings, f, str(folder)))
            print(f"\n== {result['scenario']} ({f.name})\n{render_text(result)}", flush=True)
            summary[result["scenario"]] = {k: result[k] for k in ("count", "rps", "latency_ms", "status_codes", "errors")} | \
                ({"stream": result["stream"]} if "stream" in result else {})
    finally:
        if not args.running:
            tessera(settings, "down")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
