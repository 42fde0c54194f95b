"""Hybrid search latency through the mesh at 16 concurrent clients, next to the same SQL run directly.

Uses the SciFact index of an isolated mesh (ingested first, `--limit` documents).
Mesh: the Search RPC (hybrid, cache bypassed, so every call embeds the query and
runs both signals). SQL: the very statements the search service runs (BM25 and
HNSW, built by the same functions, with the query vectors computed beforehand),
both per request, on 16 direct connections. Last line: JSON.

    make bench-search                      # 1000 documents, 30 s per side
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import corpus_args, isolated_settings, percentile, tessera

from services.search.server import VECTOR_SESSION, lexical_sql, vector_sql
from shared.cli_pipeline import ingest
from shared.eval_beir import write_corpus
from shared.gen.tessera.v1 import common_pb2, embed_pb2, embed_pb2_grpc, search_pb2, search_pb2_grpc

CLIENTS = 16


async def drive(one, queries: list[str], seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client() -> None:
        while time.perf_counter() < end:
            q = queries[next(counter) % len(queries)]
            t = time.perf_counter()
            await one(q)
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    took = time.perf_counter() - start
    return {"p50_ms": round(percentile(latencies, 0.5), 2), "p95_ms": round(percentile(latencies, 0.95), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2), "rps": round(len(latencies) / took, 1), "requests": len(latencies)}


async def run(settings, queries: list[str], seconds: float) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    filters = common_pb2.Filters(project="bench")
    async with grpc.aio.insecure_channel(settings.address("search")) as ch, grpc.aio.insecure_channel(settings.address("embed")) as ech:
        stub = search_pb2_grpc.SearchServiceStub(ch)

        async def mesh_one(q: str) -> None:
            await stub.Search(search_pb2.SearchRequest(query=q, top_k=10, filters=filters, bypass_cache=True), timeout=30)

        await drive(mesh_one, queries[:32], 3)  # warm-up
        mesh = await drive(mesh_one, queries, seconds)
        vectors = {}
        estub = embed_pb2_grpc.EmbedServiceStub(ech)
        for i in range(0, len(queries), 64):
            reply = await estub.Embed(embed_pb2.EmbedRequest(texts=queries[i:i + 64]), timeout=120)
            vectors.update({q: np.asarray(v.values, dtype=np.float32) for q, v in zip(queries[i:i + 64], reply.vectors, strict=True)})
    conns = []
    for _ in range(CLIENTS):
        conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
        await register_vector_async(conn)
        conns.append(conn)
    async with conns[0].cursor() as cur:
        await cur.execute("SELECT count(*), avg(doc_len) FROM chunks WHERE project = 'bench'")
        n, avgdl = await cur.fetchone()  # type: ignore[misc]
    lexemes, dfs = {}, {}
    for q in queries:
        row = await (await conns[0].execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (q,))).fetchone()
        lexemes[q] = list(row[0]) if row else []
        for lx in lexemes[q]:
            if lx not in dfs:
                r = await (await conns[0].execute("SELECT count(*) FROM chunks WHERE project = 'bench' AND tsv @@ quote_literal(%s)::tsquery",
                                                  (lx,))).fetchone()
                dfs[lx] = int(r[0]) if r else 0
    pool: asyncio.Queue[psycopg.AsyncConnection] = asyncio.Queue()
    for conn in conns:
        pool.put_nowait(conn)

    async def sql_one(q: str) -> None:
        conn = await pool.get()
        try:
            if lexemes[q]:
                sql, params = lexical_sql(settings, lexemes[q], filters, 100, (int(n), float(avgdl), dfs))
                await (await conn.execute(sql, params)).fetchall()
            sql, params = vector_sql(vectors[q], filters, 100)
            async with conn.transaction():
                await conn.execute(VECTOR_SESSION)
                await (await conn.execute(sql, params)).fetchall()
        finally:
            pool.put_nowait(conn)

    await drive(sql_one, queries[:32], 2)
    direct = await drive(sql_one, queries, seconds)
    for conn in conns:
        await conn.close()
    return {"mesh": mesh, "sql": direct}


def main() -> None:
    args, corpus, queries = corpus_args(__doc__.splitlines()[0], default_limit=1000)
    settings = isolated_settings()
    folder = settings.path("imports", "beir", "scifact")
    write_corpus(corpus, folder)
    tessera(settings, "up", "--timeout", "300")
    try:
        asyncio.run(ingest(settings, str(folder), "bench", quiet=True))
        result = asyncio.run(run(settings, list(queries.values()), args.seconds))
    finally:
        tessera(settings, "down")
    for side in ("mesh", "sql"):
        r = result[side]
        print(f"{side:5s} p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  {r['rps']:6.1f} req/s")
    print(json.dumps({**result, "clients": CLIENTS, "docs": len(corpus),
                      "p50_ratio_mesh_over_sql": round(result["mesh"]["p50_ms"] / max(result["sql"]["p50_ms"], 1e-9), 2)}))


if __name__ == "__main__":
    main()
