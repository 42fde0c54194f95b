"""Hybrid search through the mesh at 16 concurrent clients, next to the same full work done in this process.

Uses the SciFact index of an isolated mesh (ingested first, `--limit` documents).
Mesh: the Search RPC (hybrid, result cache bypassed). In-process: the search service's own
Searcher code on a connection pool of this process, with the query embedded here by the same
model (all-MiniLM-L6-v2 on the CPU): the same SQL (lexemes, document frequencies, BM25, HNSW),
the same fusion, the same details query and the same hits. Every request's text is new to both
sides (a count of trailing '?' makes it unique without changing its lexemes), so no embedding or
result cache answers for either. The sides run in the order mesh, in-process, in-process, mesh;
each side's figures are the mean of its two runs, and both runs are reported. Last line: JSON.

    make bench-search                      # 1000 documents, 30 s per side in all
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import corpus_args, percentile, scifact_mesh

from services.embed.encoder import Encoder, default_model_path
from services.search.server import Searcher
from shared.client import Client
from shared.gen.tessera.v1 import common_pb2, search_pb2
from shared.runtime.config import Settings

CLIENTS = 16


class Unique:
    """Query texts that no cache has seen: the i-th use of a query gets i trailing question marks (same lexemes)."""

    def __init__(self, queries: list[str]) -> None:
        self.queries, self.i = queries, 0

    def next(self) -> str:
        q = self.queries[self.i % len(self.queries)] + " " + "?" * (self.i // len(self.queries) + 1)
        self.i += 1
        return q


async def drive(one: Any, texts: Unique, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < end:
            q = texts.next()
            t = time.perf_counter()
            await one(q)
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    took = time.perf_counter() - start
    return {"p50_ms": round(percentile(latencies, 0.5), 2), "p95_ms": round(percentile(latencies, 0.95), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "rps": round(len(latencies) / took, 1), "requests": len(latencies)}


@dataclass
class LocalRuntime:
    """What the search service's Searcher reads from its runtime: the settings and a database pool."""

    settings: Settings
    db: AsyncConnectionPool


class InProcessSearcher(Searcher):
    """The service's own search code, with the query embedded in this process instead of by the embed service."""

    def __init__(self, rt: LocalRuntime, encoder: Encoder) -> None:
        super().__init__(rt)  # type: ignore[arg-type]
        self.encoder = encoder

    async def query_vector(self, query: str) -> np.ndarray:
        return np.asarray((await asyncio.to_thread(self.encoder.encode, [query]))[0], dtype=np.float32)


def mean(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(r[k] for r in runs) / len(runs), 2) for k in runs[0]}


async def run(settings: Settings, queries: list[str], seconds: float) -> dict[str, Any]:
    filters = common_pb2.Filters(project="bench")
    texts = Unique(queries)
    encoder = Encoder(settings.embed_model, default_model_path(), "cpu", 64)

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await register_vector_async(conn)

    pool = AsyncConnectionPool(settings.database_url, min_size=CLIENTS, max_size=CLIENTS, configure=configure, open=False)
    await pool.open(wait=True)
    local = InProcessSearcher(LocalRuntime(settings, pool), encoder)
    async with Client(settings) as client:
        async def mesh_one(q: str) -> None:
            await client.search(search_pb2.SearchRequest(query=q, top_k=10, filters=filters, bypass_cache=True))

        async def local_one(q: str) -> None:
            generation = await local.generation()
            await local.search(search_pb2.SearchRequest(query=q, top_k=10, filters=filters), generation)

        sides = {"mesh": mesh_one, "in_process": local_one}
        for one in sides.values():
            await drive(one, texts, 3)  # warm-up: connections, the model, caches of plans
        runs: dict[str, list[dict[str, float]]] = {"mesh": [], "in_process": []}
        for name in ("mesh", "in_process", "in_process", "mesh"):  # alternating: neither side always goes first
            runs[name].append(await drive(sides[name], texts, seconds / 2))
    await pool.close()
    return {"mesh": mean(runs["mesh"]), "in_process": mean(runs["in_process"]), "runs": runs}


def main() -> None:
    args, corpus, queries = corpus_args(__doc__.splitlines()[0], default_limit=1000)
    with scifact_mesh(corpus) as settings:
        result = asyncio.run(run(settings, list(queries.values()), args.seconds))
    for side in ("mesh", "in_process"):
        r = result[side]
        print(f"{side:10s} p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  {r['rps']:6.1f} req/s")
    print(json.dumps({**result, "clients": CLIENTS, "docs": len(corpus),
                      "p50_ratio_mesh_over_in_process": round(result["mesh"]["p50_ms"] / max(result["in_process"]["p50_ms"], 1e-9), 2),
                      "rps_ratio_mesh_over_in_process": round(result["mesh"]["rps"] / max(result["in_process"]["rps"], 1e-9), 2)}))


if __name__ == "__main__":
    main()
