"""Enrichment quality per chat model profile, and what background enrichment costs an import and a question (issue 33).

Quality: `tessera eval enrich` on the labelled notes (tests/data/enrich/notes.json, 101 notes, tune and held-out test
halves) against an isolated mesh running each profile, one slot using every core: type accuracy, tag overlap, tag
and entity precision, and summary faithfulness (shared/tools/eval_enrich.py says how each is counted).

Cost, on the last profile (the default chat model), in one mesh whose TESSERA_ENRICH names one project:
- ``enrich_import_ratio``: chunks/s of SciFact imports into the enriched project over same-sized imports into a
  project that is not enriched, each timed from the request until every chunk is searchable (embedded), in the order
  off, on, on, off;
- ``ttft_during_import_ratio``: the median first-token time of three questions asked while a third import (enriched)
  runs, over the same questions asked idle, before any import.

Prints a JSON line per profile and split as it goes, then one JSON line with every key."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, isolated_settings, tessera

from shared.client import Client, Done, Token
from shared.contracts import FINISH_ABSTAINED
from shared.runtime.config import Settings
from shared.tools.eval_beir import load_beir, write_corpus
from shared.tools.eval_enrich import DEFAULT, evaluate

QUESTIONS, CANDIDATES = 3, 20  # three claims answered from the base project, out of the first twenty
KEYS = ("type_accuracy", "tag_overlap", "tag_precision", "entity_precision", "faithfulness", "unenriched", "notes", "seconds")


async def ttft(client: Client, question: str, project: str, answered_only: bool = True) -> float:
    """Seconds to the first token of an answer (0 for an abstention when ``answered_only`` is false)."""
    start = time.perf_counter()
    stream = await client.chat(question, project=project, max_tokens=24, purpose="bench")
    first, done = 0.0, None
    async for event in stream:
        if isinstance(event, Token) and not first:
            first = time.perf_counter() - start
        done = event
    if isinstance(done, Done) and done.finish_reason == FINISH_ABSTAINED:
        if not answered_only:
            return 0.0
        raise SystemExit(f"bench-enrich: {question!r} was not answered from the notes; its first token is not a model's")
    return first


async def timed_import(settings: Settings, folder: Path, project: str, questions: Sequence[str] = ()) -> tuple[float, list[float]]:
    """(chunks/s to searchable, first-token times of the questions asked meanwhile)."""
    async with Client(settings, timeout_s=600) as client:
        start = time.perf_counter()
        job = await client.ingest_path(str(folder), project=project)
        asked: list[float] = []
        if questions:
            await asyncio.sleep(3)  # the import is under way
            asked = [await ttft(client, q, "base") for q in questions]
        async for state in client.watch_job(job.job_id, include_files=False):
            if state.done and state.counts.chunks and state.counts.chunks_embedded >= state.counts.chunks:
                break
        return state.counts.chunks_embedded / (time.perf_counter() - start), asked


def cost(profile: str, data: Path, docs: int) -> dict[str, Any]:
    corpus, queries, qrels = load_beir(data, "train")
    # the questions are SciFact claims whose documents are in the base project, so each is answered (not abstained)
    asked = [q for q in queries if q in qrels][:CANDIDATES]
    base = list(dict.fromkeys(d for q in asked for d in qrels[q] if d in corpus))
    ids = base + [i for i in corpus if i not in set(base)]
    base_n = max(50, len(base))
    # every import of the enriched project is enriched as it goes (none deferred), the worst case for the import
    settings = isolated_settings(TESSERA_CHAT_MODEL=profile, TESSERA_CHAT_SLOTS="1", TESSERA_ENRICH="enriched",
                                 TESSERA_ENRICH_IMPORT_MAX="0", TESSERA_REVIEW_SCHEDULE="off")
    folders = {}
    parts = {"base": ids[:base_n]}
    for i, name in enumerate(("off", "on", "on2", "off2", "during")):  # A B B A: neither side gets the warmer caches
        parts[name] = ids[base_n + i * docs:base_n + (i + 1) * docs]
    for name, part in parts.items():
        folders[name] = settings.path("imports", name)
        write_corpus({i: corpus[i] for i in part}, folders[name])
    tessera(settings, "up", "--timeout", "600")
    try:
        async def run() -> dict[str, Any]:
            await timed_import(settings, folders["base"], "base")
            async with Client(settings, timeout_s=600) as client:
                questions: list[str] = []
                for q in asked:  # which claims the base project answers (this also warms the model)
                    if len(questions) < QUESTIONS and await ttft(client, queries[q], "base", answered_only=False):
                        questions.append(queries[q])
                idle = [await ttft(client, q, "base") for q in questions]
            off1, _ = await timed_import(settings, folders["off"], "plain")
            on1, _ = await timed_import(settings, folders["on"], "enriched")
            on2, _ = await timed_import(settings, folders["on2"], "enriched")
            off2, _ = await timed_import(settings, folders["off2"], "plain")
            off, on = (off1 + off2) / 2, (on1 + on2) / 2
            _, during = await timed_import(settings, folders["during"], "enriched", questions)
            return {"enrich_import_ratio": round(on / off, 3),
                    "import_chunks_per_s": {"enrich_off": [round(off1, 1), round(off2, 1)], "enrich_on": [round(on1, 1), round(on2, 1)]},
                    "ttft_during_import_ratio": round(statistics.median(during) / statistics.median(idle), 3),
                    "ttft_s": {"idle": [round(x, 2) for x in idle], "during_import": [round(x, 2) for x in during]}}

        return asyncio.run(run())
    finally:
        tessera(settings, "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--file", default=str(DEFAULT))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--docs", type=int, default=300, help="documents per timed import")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    profiles = args.profiles.split(",")
    for profile in profiles if not args.skip_quality else []:
        settings = isolated_settings(TESSERA_CHAT_MODEL=profile, TESSERA_CHAT_SLOTS="1", TESSERA_ENRICH="off", TESSERA_REVIEW_SCHEDULE="off")
        tessera(settings, "up", "--timeout", "600")
        out[profile] = {}
        try:
            for split in ("tune", "test"):
                result = asyncio.run(evaluate(settings, Path(args.file), verbose=True, split=split))
                print(json.dumps({profile: result}), flush=True)
                out[profile][split] = {k: result[k] for k in KEYS}
        finally:
            tessera(settings, "down")
    last = profiles[-1]
    if last in out:
        q = out[last]
        out.update(type_accuracy_tune=q["tune"]["type_accuracy"], type_accuracy_test=q["test"]["type_accuracy"],
                   tag_precision=q["test"]["tag_precision"], entity_precision=q["test"]["entity_precision"],
                   faithfulness=q["test"]["faithfulness"], quality_profile=last)
    if not args.skip_cost:
        out.update(cost(last, Path(args.data), args.docs), cost_profile=last)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
