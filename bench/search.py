"""Search latency, throughput and quality at about 10k and 100k chunks, against an in-process baseline and the
previous design, in one run (issue 31). Last line: one JSON object with chunks, hybrid_p50_ms, hybrid_p99_ms,
lexical_p50_ms, vector_p50_ms, rps_16, p50_100k_ms, growth_100k, inprocess_p50_ms, mesh_over_inprocess,
scifact_train_ndcg10, cranfield_ndcg10 and rls_overhead, then the details.

1. An isolated mesh ingests all of SciFact (5,183 abstracts, about 9.6k chunks) with enrichment off (chat paused, as
   the issue measured) and the gateway's rate limit off (for the REST figure). Each measurement starts once the
   machine is idle (the mesh's upkeep after an import, topic clustering and impact re-weighting, has ended).
2. Through the mesh, one client, `SearchService/Search` on the search service's own port (as `tessera load` calls it),
   every query text new (the i-th pass over the train queries appends i '?': neither the result cache nor the query-
   vector cache has seen it, and the request bypasses the result cache): hybrid p50/p99 over the 809 train queries,
   lexical and vector alone over 400; 16 clients for `--seconds`: hybrid requests per second; the same hybrid search
   through the REST API (`POST /api/v1/search`) over 200, beside it. Row-level security's cost (issue 36): hybrid
   p50 with the policies switched off (as the owner, between blocks), as the system (every project), and as a reader
   whose key reaches three projects, in 4 alternating blocks of 100 queries each; `rls_overhead` is the reader's p50
   over the p50 without policies, minus 1.
3. In this process, on the same database: the search service's `Searcher` (its encoder loaded here, the same settings)
   doing the same full work, every text new to it: `inprocess_p50_ms`, and `mesh_over_inprocess`. The previous design
   (bench/previous_search.py) with the same query vectors: its p50, its nDCG@10 on SciFact train, and the top-10
   overlap with today's ranking on the first 50 queries.
4. nDCG@10 on SciFact train through the mesh (all 809 judged queries).
5. 100k chunks: the SciFact chunks replicated `--copies` more times (shuffled words, perturbed vectors, written
   directly with ingest's own postings code, the HNSW index rebuilt once); then hybrid through the mesh again.
6. Cranfield (1,400 abstracts, 225 queries) in a mesh of its own, as `tessera eval beir` measures it: nDCG@10 through
   the mesh, and the previous design's nDCG and top-10 overlap in process.

    make bench-search    (bench/search.py --limit N: the first N SciFact abstracts; --copies 0: no 100k step)
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg
from pgvector.psycopg import register_vector_async

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import corpus_args, percentile, scifact_mesh
from previous_search import PreviousStore

from services.ingest.postings import LexicalParams, chunk_postings, write_postings
from services.search.server import Searcher
from services.search.store import SearchStore
from shared.client import Client
from shared.gen.tessera.v1 import common_pb2, search_pb2
from shared.runtime import db, principal, secrets
from shared.runtime.channels import Channels
from shared.runtime.config import Settings
from shared.tools.eval_beir import file_name, load_beir
from shared.tools.ir_metrics import evaluate

CLIENTS = 16
PROJECT = "bench"
#: chat paused (no enrichment, no weekly review) and no rate limit on the bench's key, as the issue measures
MESH = {"TESSERA_ENRICH": "off", "TESSERA_REVIEW_SCHEDULE": "off", "TESSERA_GATEWAY_RATE_LIMIT": "0"}
HYBRID, LEXICAL, VECTOR = search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_LEXICAL, search_pb2.SEARCH_MODE_VECTOR


class Fresh:
    """Query texts no cache has seen: pass i over the queries appends i '?' (neither terms nor meaning change)."""

    def __init__(self, queries: list[str]) -> None:
        self.queries, self.i = queries, 0

    def next(self) -> str:
        q = self.queries[self.i % len(self.queries)] + " " + "?" * (self.i // len(self.queries) + 1)
        self.i += 1
        return q


def stems_of(corpus: dict[str, tuple[str, str]]) -> dict[str, str]:
    """File stem -> document id, as the mesh's copy of the corpus names its files."""
    return {file_name(doc_id)[:-3]: doc_id for doc_id in corpus}


def summary(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(latencies, 0.5), 2), "p99_ms": round(percentile(latencies, 0.99), 2), "n": len(latencies)}


def request(text: str, project: str, mode: int = HYBRID, top_k: int = 10) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(query=text, top_k=top_k, filters=common_pb2.Filters(project=project), mode=mode, bypass_cache=True)


async def one_client(client: Client, texts: Fresh, n: int, mode: int) -> dict[str, float]:
    latencies = []
    for _ in range(n):
        t = time.perf_counter()
        await client.search(request(texts.next(), PROJECT, mode))
        latencies.append((time.perf_counter() - t) * 1000)
    return summary(latencies)


async def many_clients(client: Client, texts: Fresh, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def one() -> None:
        while time.perf_counter() < end:
            t = time.perf_counter()
            await client.search(request(texts.next(), PROJECT))
            latencies.append((time.perf_counter() - t) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(CLIENTS)))
    return {**summary(latencies), "rps": round(len(latencies) / (time.perf_counter() - start), 1)}


async def rest(settings: Settings, texts: Fresh, n: int) -> dict[str, float]:
    """The same hybrid search through the gateway's REST API, with the admin key (rate limit off in this mesh)."""
    key = secrets.ensure(settings, secrets.ADMIN_KEY)
    latencies = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.gateway_port}", timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        for i in range(n + 10):
            t = time.perf_counter()
            r = await http.post("/api/v1/search", json={"query": texts.next(), "top_k": 10, "bypass_cache": True,
                                                        "filters": {"project": PROJECT}})
            r.raise_for_status()
            if i >= 10:  # the first ten open the connection and warm the gateway
                latencies.append((time.perf_counter() - t) * 1000)
    return summary(latencies)


#: The tables migration 0012 put under row-level security by project (ingest jobs and conversations are not read by a search).
RLS_TABLES = ("documents", "chunks", "postings", "chunk_vectors", "query_log", "clusters", "cluster_runs", "term_stats",
              "lexical_stats", "lexical_weights")
READER = principal.Principal("bench-reader", "reader", (PROJECT, "notes", "ops"))


async def row_security(settings: Settings, on: bool) -> None:
    conn = await psycopg.AsyncConnection.connect(secrets.database_url(settings, "owner"), autocommit=True)
    for table in RLS_TABLES:
        await conn.execute(f"ALTER TABLE {table} {'ENABLE' if on else 'DISABLE'} ROW LEVEL SECURITY")
    await conn.close()


async def rls_cost(client: Client, settings: Settings, texts: Fresh, rounds: int = 4, per: int = 100) -> dict[str, Any]:
    """Hybrid p50 without policies, as the system and as a reader of three projects, in blocks whose order rotates;
    then the same three sides with 16 clients for 5 s each, over 3 rounds."""
    sides: dict[str, tuple[bool, principal.Principal]] = {"off": (False, principal.SYSTEM), "system": (True, principal.SYSTEM),
                                                          "reader": (True, READER)}

    async def blocks(n: int, measure: Callable[[], Awaitable[Any]]) -> dict[str, list[Any]]:
        seen: dict[str, list[Any]] = {side: [] for side in sides}
        try:
            for r in range(n):
                for side in list(sides)[r % 3:] + list(sides)[:r % 3]:
                    on, who = sides[side]
                    await row_security(settings, on)
                    token = principal.current.set(who)
                    try:
                        seen[side].append(await measure())
                    finally:
                        principal.current.reset(token)
        finally:
            await row_security(settings, True)
        return seen

    async def latencies() -> list[float]:
        await one_client(client, texts, 5, HYBRID)  # the pool's connections take the principal's settings
        out = []
        for _ in range(per):
            t = time.perf_counter()
            await client.search(request(texts.next(), PROJECT))
            out.append((time.perf_counter() - t) * 1000)
        return out

    async def served() -> float:
        return float((await many_clients(client, texts, 5.0))["rps"])

    lat = await blocks(rounds, latencies)
    out: dict[str, Any] = {side: summary([x for block in v for x in block]) for side, v in lat.items()}
    out["rls_overhead"] = round(out["reader"]["p50_ms"] / out["off"]["p50_ms"] - 1, 3)
    out["rps_16"] = {side: round(sum(v) / len(v), 1) for side, v in (await blocks(3, served)).items()}
    return out


async def through_mesh(settings: Settings, texts: Fresh, queries: list[str], seconds: float, full: bool) -> dict[str, Any]:
    async with Client(settings, timeout_s=60) as client:
        await one_client(client, texts, 20, HYBRID)  # warm-up: connections, prepared statements
        out: dict[str, Any] = {"hybrid": await one_client(client, texts, len(queries), HYBRID)}
        if full:
            out["lexical"] = await one_client(client, texts, min(400, len(queries)), LEXICAL)
            out["vector"] = await one_client(client, texts, min(400, len(queries)), VECTOR)
            out["clients_16"] = await many_clients(client, texts, seconds)
            out["rls"] = await rls_cost(client, settings, texts)
    if full:
        out["rest_hybrid"] = await rest(settings, texts, min(200, len(queries)))
    return out


async def mesh_ndcg(settings: Settings, project: str, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                    stems: dict[str, str]) -> float:
    """nDCG@10 of the mesh's hybrid search over the judged queries (exact texts, result cache bypassed)."""
    gate, run = asyncio.Semaphore(4), {}
    async with Client(settings, timeout_s=60) as client:
        async def one(qid: str, text: str) -> None:
            async with gate:
                reply = await client.search(request(text, project))
            run[qid] = [stems.get(Path(h.source.path).stem, "") for h in reply.hits]

        await asyncio.gather(*(one(q, queries[q]) for q in qrels if q in queries))
    return round(evaluate(qrels, run)["ndcg@10"], 4)


async def in_process(settings: Settings, project: str, queries: dict[str, str], qrels: dict[str, dict[str, int]],
                     stems: dict[str, str], latency: bool) -> dict[str, Any]:
    """Today's Searcher and the previous design in this process on the mesh's database, one encoder for both."""
    pool = await db.open_pool(settings)
    reads = await db.open_read_pool(settings)  # as the search service reads
    try:
        new = Searcher(settings, SearchStore(pool, settings, reads), Channels(settings))
        new.vectors.start()
        if not await new.vectors.wait_loaded():
            raise SystemExit("bench: the query encoder did not load in this process (run `make setup`)")
        previous = Searcher(settings, PreviousStore(pool, settings), Channels(settings))
        previous.vectors = new.vectors
        judged = [q for q in qrels if q in queries]
        runs: dict[str, dict[str, list[str]]] = {"new": {}, "previous": {}}
        for qid in judged:
            for name, searcher in (("new", new), ("previous", previous)):
                reply = await searcher.search(request(queries[qid], project), 0)
                runs[name][qid] = [stems.get(Path(h.source.path).stem, "") for h in reply.hits]
        first = judged[:50]
        out: dict[str, Any] = {
            "ndcg10": {name: round(evaluate(qrels, run)["ndcg@10"], 4) for name, run in runs.items()},
            "top10_overlap_50": round(sum(len(set(runs["new"][q]) & set(runs["previous"][q])) / 10 for q in first) / len(first), 4)}
        if latency:  # the two designs query by query in turn, each with texts the shared query-vector cache has not seen
            texts = list(queries.values())
            fresh = {"new": Fresh(texts), "previous": Fresh(texts)}
            fresh["new"].i, fresh["previous"].i = len(texts), 2 * len(texts)  # passes 2 and 3 of the '?' suffixes
            lat: dict[str, list[float]] = {"new": [], "previous": []}
            for _ in range(len(texts)):
                for name, searcher in (("new", new), ("previous", previous)):
                    t = time.perf_counter()
                    await searcher.search(request(fresh[name].next(), project), 0)
                    lat[name].append((time.perf_counter() - t) * 1000)
            out["new_hybrid"], out["previous_hybrid"] = summary(lat["new"]), summary(lat["previous"])
        await new.vectors.stop()
        return out
    finally:
        await reads.close()
        await pool.close()


def quiet(limit_s: float = 300.0) -> float:
    """Wait until the machine is idle (under 10 % of its CPUs over 3 s: the mesh's upkeep after an import, such as
    topic clustering and impact re-weighting, has ended), at most ``limit_s``; the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s and psutil.cpu_percent(interval=3.0) > 10.0:
        pass
    return round(time.perf_counter() - start, 1)


async def vacuum(settings: Settings) -> int:
    """VACUUM ANALYZE the search tables (as autovacuum would after an import); the project's chunk count."""
    conn = await psycopg.AsyncConnection.connect(secrets.database_url(settings, "owner"), autocommit=True)
    for table in ("postings", "term_stats", "chunks", "chunk_vectors", "documents"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    row = await (await conn.execute("SELECT count(*) FROM chunks")).fetchone()
    await conn.close()
    return int(row[0]) if row else 0


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
    await conn.execute("CREATE INDEX chunk_vectors_embedding ON chunk_vectors USING hnsw (embedding vector_cosine_ops) WHERE indexed")
    await conn.execute("VACUUM ANALYZE chunks")
    await conn.execute("VACUUM ANALYZE chunk_vectors")
    await conn.execute("VACUUM ANALYZE postings")
    row = await (await conn.execute("SELECT count(*) FROM chunks WHERE project = %s", (PROJECT,))).fetchone()
    await conn.execute("UPDATE index_state SET generation = generation + 1")
    await conn.close()
    return int(row[0]) if row else 0


def main() -> None:
    args, corpus, queries = corpus_args(__doc__.splitlines()[0], default_limit=0)
    _, _, qrels = load_beir(Path(args.data), "train")
    stems = stems_of(corpus)
    texts = list(queries.values())
    fresh = Fresh(texts)
    started = time.perf_counter()
    with scifact_mesh(corpus, PROJECT, **MESH) as settings:
        print(f"scifact ingested in {time.perf_counter() - started:.0f} s", flush=True)
        n10k = asyncio.run(vacuum(settings))
        waits = {"10k": quiet()}
        at_10k = asyncio.run(through_mesh(settings, fresh, texts, args.seconds, full=True))
        print(f"{n10k} chunks, through the mesh: {json.dumps(at_10k)}", flush=True)
        local = asyncio.run(in_process(settings, PROJECT, queries, qrels, stems, latency=True))
        print(f"in process: {json.dumps(local)}", flush=True)
        scifact = asyncio.run(mesh_ndcg(settings, PROJECT, queries, qrels, stems))
        at_100k: dict[str, Any] = {}
        n100k = 0
        if args.copies:
            n100k = asyncio.run(grow(settings, args.copies))
            asyncio.run(vacuum(settings))
            waits["100k"] = quiet()
            at_100k = asyncio.run(through_mesh(settings, fresh, texts[:400], 0, full=False))
            print(f"{n100k} chunks, through the mesh: {json.dumps(at_100k)}", flush=True)
    cran_corpus, cran_queries, cran_qrels = load_beir(Path(args.cranfield), "train")
    cran_stems = stems_of(cran_corpus)
    with scifact_mesh(cran_corpus, "cranfield", **MESH) as settings:
        asyncio.run(vacuum(settings))
        cranfield = asyncio.run(mesh_ndcg(settings, "cranfield", cran_queries, cran_qrels, cran_stems))
        cran_local = asyncio.run(in_process(settings, "cranfield", cran_queries, cran_qrels, cran_stems, latency=False))
        print(f"cranfield in process: {json.dumps(cran_local)}", flush=True)
    h10 = at_10k["hybrid"]
    p100 = at_100k["hybrid"]["p50_ms"] if at_100k else None
    inproc = local["new_hybrid"]["p50_ms"]
    print(json.dumps({
        "chunks": n10k, "hybrid_p50_ms": h10["p50_ms"], "hybrid_p99_ms": h10["p99_ms"],
        "lexical_p50_ms": at_10k["lexical"]["p50_ms"], "vector_p50_ms": at_10k["vector"]["p50_ms"],
        "rps_16": at_10k["clients_16"]["rps"], "p50_100k_ms": p100, "growth_100k": round(p100 / h10["p50_ms"], 2) if p100 else None,
        "inprocess_p50_ms": inproc, "mesh_over_inprocess": round(h10["p50_ms"] / inproc, 2),
        "scifact_train_ndcg10": scifact, "cranfield_ndcg10": cranfield, "rls_overhead": at_10k["rls"]["rls_overhead"],
        "rest_hybrid_p50_ms": at_10k["rest_hybrid"]["p50_ms"], "chunks_100k": n100k,
        "previous": {"inprocess_p50_ms": local["previous_hybrid"]["p50_ms"],
                     "scifact_train_ndcg10": local["ndcg10"]["previous"], "cranfield_ndcg10": cran_local["ndcg10"]["previous"],
                     "top10_overlap_50_scifact": local["top10_overlap_50"], "top10_overlap_50_cranfield": cran_local["top10_overlap_50"]},
        "inprocess_ndcg10": {"scifact_train": local["ndcg10"]["new"], "cranfield": cran_local["ndcg10"]["new"]},
        "at_10k": at_10k, "at_100k": at_100k, "quiet_wait_s": waits,
        "targets": {"hybrid_p50_ms": 15, "hybrid_p99_ms": 40, "rps_16": 100, "growth_100k": 2, "mesh_over_inprocess": 1.3,
                    "scifact_train_ndcg10": 0.735, "cranfield_ndcg10": 0.4369, "top10_overlap_50": 0.9, "ndcg_delta": 0.005,
                    "rls_overhead": 0.10}}))


if __name__ == "__main__":
    main()
