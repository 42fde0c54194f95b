"""Search latency and throughput on the SciFact index, at about 10k and 100k chunks.

1. An isolated mesh ingests the SciFact corpus (all 5,183 abstracts, about 10k chunks).
2. Single client, result cache bypassed, every train query once through the Search RPC:
   hybrid p50/p99, and lexical and vector alone.
3. 16 clients for `--seconds`: hybrid requests per second.
4. Baseline in the same run: the previous lexical design (BM25 by unnesting the
   tsvector of every chunk that matches any query term, IDF from per-lexeme counts),
   rebuilt in this database as an extra column and run in this process, against the
   postings SQL run the same way.
5. 100k chunks: the SciFact chunks replicated 9 more times, each copy with its word
   order shuffled and its vector perturbed (Gaussian noise, renormalised), written
   directly (documents, chunks, postings through ingest's own postings code), bypassing
   the embedder. Then step 2 again.

The result cache is bypassed by the request flag, as `tessera load` does; the query-embedding
cache is warmed once per query first, so the figures are search's own cost. The same runs with
every text new (trailing '?'s change neither terms nor meaning) are reported beside
(`*_fresh_text`): they add one model pass of the embed service per request. Last line: JSON with
p50_ms, p99_ms, rps_16, p50_ms_100k and growth_100k_over_10k.

    make bench-search    (bench/search.py --limit N: the first N abstracts; --copies 0: no 100k step)
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import corpus_args, percentile, scifact_mesh

from services.ingest.postings import LexicalParams, chunk_postings, write_postings
from services.search.store import bm25_idf
from shared.client import Client
from shared.gen.tessera.v1 import common_pb2, search_pb2
from shared.runtime import secrets
from shared.runtime.config import Settings

CLIENTS = 16
PROJECT = "bench"


class Unique:
    """Query texts in turn. With ``fresh``, the i-th use of a query gets i trailing question marks, so
    neither the result cache nor the query-embedding cache has seen it; without, only the result cache
    is bypassed (by the request flag) and a query's vector may come from the embedding cache, as in
    `tessera load` runs of the same queries."""

    def __init__(self, queries: list[str], fresh: bool = False) -> None:
        self.queries, self.i, self.fresh = queries, 0, fresh

    def next(self) -> str:
        q = self.queries[self.i % len(self.queries)]
        if self.fresh:
            q += " " + "?" * (self.i // len(self.queries) + 1)
        self.i += 1
        return q


def summary(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(latencies, 0.5), 2), "p99_ms": round(percentile(latencies, 0.99), 2), "n": len(latencies)}


async def single_client(client: Client, texts: Unique, n: int, mode: int) -> dict[str, float]:
    filters = common_pb2.Filters(project=PROJECT)
    latencies = []
    for _ in range(n):
        t = time.perf_counter()
        await client.search(search_pb2.SearchRequest(query=texts.next(), top_k=10, filters=filters, mode=mode, bypass_cache=True))
        latencies.append((time.perf_counter() - t) * 1000)
    return summary(latencies)


async def many_clients(client: Client, texts: Unique, seconds: float) -> dict[str, float]:
    filters = common_pb2.Filters(project=PROJECT)
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def one() -> None:
        while time.perf_counter() < end:
            t = time.perf_counter()
            await client.search(search_pb2.SearchRequest(query=texts.next(), top_k=10, filters=filters, bypass_cache=True))
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(CLIENTS)))
    return {**summary(latencies), "rps": round(len(latencies) / (time.perf_counter() - start), 1)}


async def latency_block(settings: Settings, queries: list[str], n: int, seconds: float) -> dict[str, Any]:
    texts = Unique(queries)
    async with Client(settings, timeout_s=60) as client:
        await single_client(client, Unique(queries, fresh=True), 20, search_pb2.SEARCH_MODE_HYBRID)  # warm-up: connections, plans
        for _ in range(len(queries)):  # every query's vector once, as a running system has them for repeated questions
            await client.embed([texts.next()], query=True)
        out: dict[str, Any] = {
            "hybrid": await single_client(client, texts, n, search_pb2.SEARCH_MODE_HYBRID),
            "lexical": await single_client(client, texts, n, search_pb2.SEARCH_MODE_LEXICAL),
            "vector": await single_client(client, texts, n, search_pb2.SEARCH_MODE_VECTOR),
            "hybrid_fresh_text": await single_client(client, Unique(queries, fresh=True), min(n, 300), search_pb2.SEARCH_MODE_HYBRID),
        }
        if seconds:
            out["clients_16"] = await many_clients(client, texts, seconds)
            out["clients_16_fresh_text"] = await many_clients(client, Unique(queries, fresh=True), seconds / 2)
    return out


# -- the previous lexical design, as the same-run baseline ---------------------------------------------------------------

OLD_SQL = (
    "WITH q(lexeme, idf) AS (SELECT * FROM unnest(%(lex)s::text[], %(idf)s::float8[])),"
    " cand AS (SELECT c.id, c.document_id, c.old_tsv, c.old_len FROM chunks c WHERE c.old_tsv @@ %(tsq)s::tsquery AND c.project = %(p)s)"
    " SELECT cand.id, cand.document_id, sum(q.idf * t.tf * (%(k1)s + 1)"
    "        / (t.tf + %(k1)s * (1 - %(b)s + %(b)s * cand.old_len / %(avgdl)s))) AS score"
    " FROM cand CROSS JOIN LATERAL (SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf FROM unnest(cand.old_tsv) u) t"
    " JOIN q ON q.lexeme = t.lexeme GROUP BY cand.id, cand.document_id ORDER BY score DESC LIMIT 100")


async def lexical_in_process(settings: Settings, queries: list[str]) -> dict[str, Any]:
    """Single-client lexical latency in this process: the previous tsvector SQL against the postings SQL."""
    from services.search.store import SearchStore
    from shared.runtime import analyzer, db

    s = settings.search
    conn = await psycopg.AsyncConnection.connect(secrets.database_url(settings, "owner"), autocommit=True)
    await register_vector_async(conn)
    await conn.execute("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS old_tsv tsvector GENERATED ALWAYS AS"
                       " (to_tsvector('english', context || ' ' || text)) STORED")
    await conn.execute("ALTER TABLE chunks ADD COLUMN IF NOT EXISTS old_len int GENERATED ALWAYS AS"
                       " (length(to_tsvector('english', context || ' ' || text))) STORED")
    await conn.execute("CREATE INDEX IF NOT EXISTS chunks_old_tsv ON chunks USING gin (old_tsv)")
    await conn.execute("ANALYZE chunks")
    old: list[float] = []
    for q in queries:
        t = time.perf_counter()  # the old path's three steps: lexemes, corpus size, df per lexeme, then BM25
        lex = list((await (await conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (q,))).fetchone())[0])  # type: ignore[index]
        if lex:
            n, avgdl = await (await conn.execute("SELECT count(*), avg(old_len) FROM chunks WHERE project = %s", (PROJECT,))).fetchone()  # type: ignore[misc]
            df = [int((await (await conn.execute(
                "SELECT count(*) FROM chunks WHERE old_tsv @@ quote_literal(%s)::tsquery AND project = %s", (lx, PROJECT))).fetchone())[0])  # type: ignore[index]
                  for lx in lex]
            await conn.execute(OLD_SQL, {"lex": lex, "idf": [bm25_idf(n, d) for d in df], "tsq": " | ".join(f"'{x}'" for x in lex),
                                         "p": PROJECT, "k1": s.bm25_k1, "b": s.bm25_b, "avgdl": float(avgdl)})
        old.append((time.perf_counter() - t) * 1000)
    await conn.execute("DROP INDEX chunks_old_tsv")
    await conn.execute("ALTER TABLE chunks DROP COLUMN old_len, DROP COLUMN old_tsv")
    await conn.close()
    pool = await db.open_pool(settings)
    store = SearchStore(pool, settings)
    new: list[float] = []
    for q in queries:
        t = time.perf_counter()
        terms = analyzer.query_terms(q)
        if terms:
            await store.lexical(terms, common_pb2.Filters(project=PROJECT), 100)
        new.append((time.perf_counter() - t) * 1000)
    await pool.close()
    o, n_ = summary(old), summary(new)
    return {"previous_tsvector": o, "postings": n_, "p50_speedup": round(o["p50_ms"] / max(n_["p50_ms"], 1e-9), 1)}


# -- 100k chunks ------------------------------------------------------------------------------------------------------------

def shuffled(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


async def grow(settings: Settings, copies: int) -> int:
    """Replicate the project's chunks ``copies`` times (shuffled words, perturbed vectors); the chunk count after."""
    rng, nrng = random.Random(7), np.random.default_rng(7)
    lexical = LexicalParams(settings.search.title_weight, settings.search.bm25_k1, settings.search.bm25_b)
    # The owner role: the bench drops and rebuilds the HNSW index, which only the tables' owner may.
    conn = await psycopg.AsyncConnection.connect(secrets.database_url(settings, "owner"), autocommit=True)
    await register_vector_async(conn)
    docs = await (await conn.execute("SELECT id, path, title, media_type FROM documents WHERE project = %s ORDER BY path",
                                     (PROJECT,))).fetchall()
    chunks: dict[Any, list[tuple[Any, ...]]] = {}
    for row in await (await conn.execute(
            "SELECT c.document_id, c.ord, c.text, c.heading_path, c.char_start, c.char_end, c.line_start, c.line_end, c.context, v.embedding,"
            " v.model_id FROM chunks c JOIN chunk_vectors v ON v.chunk_id = c.id WHERE c.project = %s ORDER BY c.document_id, c.ord",
            (PROJECT,))).fetchall():
        chunks.setdefault(row[0], []).append(row)
    await conn.execute("DROP INDEX IF EXISTS chunk_vectors_embedding")  # rebuilt once at the end: faster than 90k inserts into HNSW
    for copy in range(1, copies + 1):
        async with conn.transaction():
            for doc_id, path, title, media_type in docs:
                new_doc = uuid.uuid5(uuid.NAMESPACE_URL, f"bench-copy:{copy}:{doc_id}")
                await conn.execute("INSERT INTO documents (id, project, path, title, media_type, content_hash, embedded)"
                                   " VALUES (%s, %s, %s, %s, %s, 'copy', true)", (new_doc, PROJECT, f"{path}.copy{copy}", title, media_type))
                rows = chunks.get(doc_id, [])
                ids = [uuid.uuid4() for _ in rows]
                texts = [shuffled(r[2], rng) for r in rows]
                contexts = [r[8] for r in rows]
                postings = chunk_postings(ids, contexts, texts, lexical.title_weight)
                vecs = []
                for r in rows:
                    base = np.asarray(r[9].to_numpy(), dtype=np.float32)
                    v = base + nrng.normal(0, 0.02, len(base)).astype(np.float32)
                    vecs.append(v / np.linalg.norm(v))
                async with conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO chunks (id, document_id, ord, text, heading_path, char_start, char_end, line_start, line_end,"
                        " project, context, lex_len) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                        [(cid, new_doc, r[1], t, r[3], r[4], r[5], r[6], r[7], PROJECT, r[8], ln)
                         for cid, r, t, ln in zip(ids, rows, texts, postings.lengths, strict=True)])
                    await cur.executemany(
                        "INSERT INTO chunk_vectors (chunk_id, model_id, document_id, project, embedding) VALUES (%s,%s,%s,%s,%s)",
                        [(cid, r[10], new_doc, PROJECT, v) for cid, r, v in zip(ids, rows, vecs, strict=True)])
                await conn.execute("INSERT INTO lexical_stats (project, shard, chunks, terms) VALUES (%s, abs(hashtext(%s::text)) %% 16, %s, %s)"
                                   " ON CONFLICT (project, shard) DO UPDATE SET chunks = lexical_stats.chunks + excluded.chunks,"
                                   " terms = lexical_stats.terms + excluded.terms", (PROJECT, new_doc, len(ids), sum(postings.lengths)))
                await write_postings(conn, PROJECT, new_doc, postings, lexical)
        print(f"copy {copy}/{copies} written", flush=True)
    await conn.execute("SET maintenance_work_mem = '1GB'")
    await conn.execute("CREATE INDEX chunk_vectors_embedding ON chunk_vectors USING hnsw (embedding vector_cosine_ops)")
    await conn.execute("VACUUM ANALYZE chunks")
    await conn.execute("VACUUM ANALYZE chunk_vectors")
    await conn.execute("VACUUM ANALYZE postings")
    row = await (await conn.execute("SELECT count(*) FROM chunks WHERE project = %s", (PROJECT,))).fetchone()
    await conn.execute("UPDATE index_state SET generation = generation + 1")
    await conn.close()
    return int(row[0]) if row else 0


def main() -> None:
    args, corpus, queries = corpus_args(__doc__.splitlines()[0], default_limit=0)
    copies = args.copies
    qs = list(queries.values())
    with scifact_mesh(corpus, PROJECT) as settings:
        conn = psycopg.connect(secrets.database_url(settings), autocommit=True)
        conn.execute("VACUUM ANALYZE postings")
        n10k = int(conn.execute("SELECT count(*) FROM chunks WHERE project = %s", (PROJECT,)).fetchone()[0])  # type: ignore[index]
        conn.close()
        at_10k = asyncio.run(latency_block(settings, qs, len(qs), args.seconds))
        print(f"{n10k} chunks: {json.dumps(at_10k)}", flush=True)
        baseline = asyncio.run(lexical_in_process(settings, qs[:200]))
        print(f"lexical in process: {json.dumps(baseline)}", flush=True)
        if not copies:  # --copies 0: the 10k figures alone
            print(json.dumps({"p50_ms": at_10k["hybrid"]["p50_ms"], "p99_ms": at_10k["hybrid"]["p99_ms"],
                              "rps_16": at_10k["clients_16"]["rps"], "chunks_10k": n10k, "at_10k": at_10k}))
            return
        n100k = asyncio.run(grow(settings, copies))
        at_100k = asyncio.run(latency_block(settings, qs, len(qs), 0))
        print(f"{n100k} chunks: {json.dumps(at_100k)}", flush=True)
    h10, h100 = at_10k["hybrid"], at_100k["hybrid"]
    print(json.dumps({"p50_ms": h10["p50_ms"], "p99_ms": h10["p99_ms"], "rps_16": at_10k["clients_16"]["rps"],
                      "p50_ms_100k": h100["p50_ms"], "p99_ms_100k": h100["p99_ms"],
                      "growth_100k_over_10k": round(h100["p50_ms"] / max(h10["p50_ms"], 1e-9), 2),
                      "chunks_10k": n10k, "chunks_100k": n100k, "at_10k": at_10k, "at_100k": at_100k,
                      "lexical_baseline": baseline, "targets": {"p50_ms": 15, "p99_ms": 40, "rps_16": 4 * 27, "growth_100k_over_10k": 2}}))


if __name__ == "__main__":
    main()
