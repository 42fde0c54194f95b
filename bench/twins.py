"""Vector recall beside a document of repeated lines: every identical vector in the HNSW graph (the previous design)
against one of them (migration 0011: the twins stay outside the graph), in one run, on the same data.

A real PostgreSQL with pgvector (embedded, isolated), a table shaped like chunk_vectors with its HNSW index, and
MiniLM (the int8 export embed runs) vectors: SciFact abstracts, and a log line repeated ``--copies`` times. Rows go
in one at a time as embed writes them, the index built as they arrive. Two layouts:
- **first**: the log is stored before the notes (a log imported, then notes captured), ``--distinct`` notes;
- **middle**: the log arrives halfway through ``--distinct-large`` notes.

For each, SciFact train queries walk the graph as search does (ef_search 100, 100 candidates); recall@10 is taken
against the exact nearest notes (numpy), and ``lost`` counts the queries that found fewer than half of theirs.

    python bench/twins.py [--distinct 200] [--distinct-large 3000] [--copies 500] [--queries 100]

The last line is one JSON object: per layout, ``recall10`` and ``lost`` for ``previous`` and ``twins``, and the
seconds the rows took to write (``write_s``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, isolated_settings

from shared.ops.infra import start_all, stop_all
from shared.runtime import db
from shared.runtime.config import Settings
from shared.runtime.query_encoder import OnnxEncoder, cache_dir, default_model_dir, export_dir
from shared.tools.eval_beir import load_beir

LINE = "WARN upstream timed out while reading the response header from the backend pool; retrying the request.\n" * 6
TABLE = ("CREATE TABLE twins_bench (id int PRIMARY KEY, embedding vector(384) NOT NULL,"
         " digest bytea GENERATED ALWAYS AS (decode(md5(vector_send(embedding)), 'hex')) STORED, indexed boolean NOT NULL)")
# As embed's write_vectors: a vector its document already has in the graph is stored as that one's twin.
TWIN = ("INSERT INTO twins_bench (id, embedding, indexed) SELECT %(i)s, %(v)s::vector, NOT (%(log)s AND EXISTS"
        " (SELECT 1 FROM twins_bench o WHERE o.id < 0 AND o.digest = decode(md5(vector_send(%(v)s::vector)), 'hex') AND o.indexed))")
PREVIOUS = "INSERT INTO twins_bench (id, embedding, indexed) VALUES (%(i)s, %(v)s::vector, true)"


def literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


async def measure(settings: Settings, design: str, notes: np.ndarray, log: np.ndarray, copies: int, at: int,
                  queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    conn = await db.connect_once(settings, "owner")
    try:
        await conn.execute("DROP TABLE IF EXISTS twins_bench")
        await conn.execute(TABLE)
        where = " WHERE indexed" if design == "twins" else ""
        await conn.execute(f"CREATE INDEX ON twins_bench USING hnsw (embedding vector_cosine_ops){where}")
        stream: list[tuple[int, np.ndarray]] = [(i, notes[i]) for i in range(at)] + [(-1 - j, log) for j in range(copies)]
        stream += [(i, notes[i]) for i in range(at, len(notes))]
        started = time.perf_counter()
        async with conn.cursor() as cur:
            for i, v in stream:
                await cur.execute(TWIN if design == "twins" else PREVIOUS, {"i": i, "v": literal(v), "log": i < 0})
        write_s = time.perf_counter() - started
        indexed = (await (await conn.execute("SELECT count(*) FILTER (WHERE indexed) FROM twins_bench WHERE id < 0")).fetchone() or [0])[0]
        await conn.execute("SET hnsw.ef_search = 100")
        recalls = []
        for q, want in zip(queries, truth, strict=True):
            found = [r[0] for r in await (await conn.execute(
                f"SELECT id FROM twins_bench{where} ORDER BY embedding <=> %s::vector LIMIT 100", (literal(q),))).fetchall()]
            recalls.append(len({f for f in found if f >= 0}.intersection(want.tolist())) / len(want))
        return {"recall10": round(float(np.mean(recalls)), 4), "lost": sum(r < 0.5 for r in recalls),
                "log_vectors_in_graph": int(indexed), "write_s": round(write_s, 2)}
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--distinct", type=int, default=200)
    parser.add_argument("--distinct-large", type=int, default=3000)
    parser.add_argument("--copies", type=int, default=500)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    corpus, queries, _ = load_beir(Path(args.data), "train")
    docs = list(corpus.values())[:max(args.distinct, args.distinct_large)]
    encoder = OnnxEncoder(export_dir(cache_dir(""), default_model_dir()), "int8", parallel=2)
    print(f"bench-twins: encoding {len(docs)} abstracts and {args.queries} queries …", file=sys.stderr)
    vectors = encoder.encode([f"{title}\n{text}" for title, text in docs])
    qv = encoder.encode(list(queries.values())[:args.queries])
    log = encoder.encode([LINE])[0]
    settings = isolated_settings(TESSERA_EMBEDDED="postgres")
    start_all(settings)
    out: dict[str, Any] = {"copies": args.copies, "queries": args.queries}
    try:
        for layout, n, at in (("first", args.distinct, 0), ("middle", args.distinct_large, args.distinct_large // 2)):
            notes = vectors[:n]
            truth = np.argsort(-(qv @ notes.T), axis=1)[:, :10]
            out[layout] = {"notes": n}
            for design in ("previous", "twins"):
                result = asyncio.run(measure(settings, design, notes, log, args.copies, at, qv, truth))
                print(f"bench-twins: {layout} {design}: {json.dumps(result)}", file=sys.stderr)
                out[layout][design] = result
    finally:
        stop_all(settings)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
