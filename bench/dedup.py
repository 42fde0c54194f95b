"""Dedup on capture, measured on the labelled set (tests/data/dedup/pairs.jsonl, built by bench/dedup_set.py).

An isolated mesh (enrichment off). Every distinct note of the set is captured into one project (forced) and embedded;
then each pair's capture is sent as a person's capture is, through the gateway with dedup on. A capture counts as
flagged when the reply says ``duplicate`` and names the pair's note; a capture that was stored is deleted again, so
no capture is compared with another. Precision and recall are over the repeats, for the whole set and each half
(tune: what the shingle size and threshold were chosen on; test: held out).

Baseline, in the same run and on the same mesh: the previous check, a vector of the capture as embed stores a chunk
(title context, then text) against the project's nearest chunk, flagged at cosine >= 0.95 (one vector per capture:
the first 256 tokens, where the old check took a vector per chunk).

Prints one JSON line: pairs, precision, recall, tune and test halves, flagged share by kind, the baseline's figures,
and the capture round trip p50 (ms) of both."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import isolated_settings, percentile, tessera

from shared.client import Client
from shared.runtime import secrets
from shared.runtime.config import Settings

PAIRS = Path(__file__).resolve().parent.parent / "tests" / "data" / "dedup" / "pairs.jsonl"
PROJECT = "dedup-bench"
OLD_COSINE = 0.95


def scores(rows: list[tuple[dict[str, Any], bool]]) -> dict[str, float]:
    tp = sum(1 for p, f in rows if f and p["repeat"])
    fp = sum(1 for p, f in rows if f and not p["repeat"])
    pos = sum(1 for p, _ in rows if p["repeat"])
    return {"pairs": len(rows), "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0, "recall": round(tp / pos, 4) if pos else 1.0}


async def wait_embedded(settings: Settings, timeout: float = 900) -> None:
    end = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(secrets.database_url(settings), autocommit=True) as conn:
        while time.monotonic() < end:
            row = await (await conn.execute("SELECT count(*) FILTER (WHERE NOT embedded), count(*) FROM documents WHERE project = %s",
                                            (PROJECT,))).fetchone()
            if row and row[1] and not row[0]:
                return
            await asyncio.sleep(0.5)
    raise SystemExit("bench-dedup: the notes were not embedded in time")


async def old_check(conn: psycopg.AsyncConnection[Any], client: Client, title: str, body: str) -> tuple[str, float]:
    """The previous design's decision input: the capture's nearest chunk in the project and its cosine."""
    vec = (await client.embed([f"{title}\n{body}"])).vectors[0].values
    literal = "[" + ",".join(f"{v:.7f}" for v in vec) + "]"
    row = await (await conn.execute(
        "SELECT document_id::text, 1 - (embedding <=> %s::vector) FROM chunk_vectors WHERE indexed AND project = %s"
        " ORDER BY embedding <=> %s::vector LIMIT 1", (literal, PROJECT, literal))).fetchone()
    return (row[0], float(row[1])) if row else ("", 0.0)


async def run(settings: Settings, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    notes: dict[tuple[str, str], str] = {}
    async with Client(settings) as client:
        for p in pairs:
            key = (p["note"]["title"], p["note"]["body"])
            if key not in notes:
                reply = await client.capture(*key, project=PROJECT, force=True)
                notes[key] = reply.document_id
        await wait_embedded(settings)
        new: list[tuple[dict[str, Any], bool]] = []
        old: list[tuple[dict[str, Any], bool]] = []
        new_ms: list[float] = []
        async with await psycopg.AsyncConnection.connect(secrets.database_url(settings), autocommit=True) as conn:
            for p in pairs:
                note_id = notes[(p["note"]["title"], p["note"]["body"])]
                nearest, cosine = await old_check(conn, client, p["capture"]["title"], p["capture"]["body"])
                old.append((p, cosine >= OLD_COSINE and nearest == note_id))
                t1 = time.perf_counter()
                reply = await client.capture(p["capture"]["title"], p["capture"]["body"], project=PROJECT)
                new_ms.append((time.perf_counter() - t1) * 1000)
                new.append((p, reply.duplicate and reply.document_id == note_id))
                if not reply.duplicate:
                    await client.delete_document(reply.document_id)
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for p, flagged in new:
        by_kind[p["kind"]].append(flagged)
    missed = [{"id": p["id"], "kind": p["kind"]} for p, f in new if f != p["repeat"]]
    return {**scores(new), "tune": scores([r for r in new if r[0]["split"] == "tune"]),
            "test": scores([r for r in new if r[0]["split"] == "test"]),
            "flagged_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())},
            "wrong": missed,
            "baseline": {**scores(old), "test": scores([r for r in old if r[0]["split"] == "test"]), "rule": f"chunk cosine >= {OLD_COSINE}"},
            "capture_p50_ms": round(percentile(new_ms, 0.5), 1), "notes": len(notes),
            "threshold": settings.knowledge.dedup_threshold}


def main() -> None:
    parser = argparse.ArgumentParser(description="dedup precision and recall on the labelled pairs")
    parser.add_argument("--pairs", default=str(PAIRS))
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs (0: all)")
    args = parser.parse_args()
    pairs = [json.loads(line) for line in Path(args.pairs).read_text().splitlines() if line.strip()]
    if args.limit:
        pairs = pairs[:args.limit]
    settings = isolated_settings(TESSERA_ENRICH="off")
    tessera(settings, "up", "--timeout", "300")
    try:
        out = asyncio.run(run(settings, pairs))
    finally:
        tessera(settings, "down")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
