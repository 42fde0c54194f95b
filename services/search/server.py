"""Wires hybrid search to PostgreSQL (BM25 over tsvector + pgvector HNSW), the embed
service (query vectors) and Redis (results keyed by the index generation)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import math
import time
import uuid
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToJson

from services.search.fusion import Candidate, Fused, fuse_rrf, snippet
from shared.errors import InvalidArgument, NotFound, Unavailable
from shared.gen.tessera.v1 import common_pb2, embed_pb2, embed_pb2_grpc, search_pb2, search_pb2_grpc
from shared.runtime.config import Settings
from shared.runtime.db import VECTOR_SESSION, fetch_dicts
from shared.runtime.service import Runtime, main

SERVICE = "search"
NEEDS = ("postgres", "nats", "redis")
MAX_TOP_K = 100
log = logging.getLogger("tessera.search")


def filter_sql(f: common_pb2.Filters, params: dict[str, Any]) -> str:
    """WHERE conditions on chunks c joined to documents d."""
    conds = []
    if f.project:
        conds.append("c.project = %(project)s")
        params["project"] = f.project
    if f.types:
        conds.append("d.type = ANY(%(types)s)")
        params["types"] = list(f.types)
    if f.tags:
        conds.append("d.tags @> %(tags)s")
        params["tags"] = list(f.tags)
    for name, column, op in (("created_after", "d.created_at", ">="), ("created_before", "d.created_at", "<"),
                             ("updated_after", "d.updated_at", ">="), ("updated_before", "d.updated_at", "<")):
        if f.HasField(name):
            conds.append(f"{column} {op} %({name})s")
            params[name] = getattr(f, name).ToDatetime(tzinfo=dt.UTC)
    return " AND ".join(conds) if conds else "true"


def tsquery_any(lexemes: list[str]) -> str:
    return " | ".join("'" + lx.replace("'", "''") + "'" for lx in lexemes)


def bm25_idf(n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def lexical_sql(settings: Settings, lexemes: list[str], filters: common_pb2.Filters, limit: int,
                stats: tuple[int, float, dict[str, int]] | None) -> tuple[str, dict[str, Any]]:
    """BM25 over the chunks' tsvectors (IDF from ``stats``), or ts_rank when stats is None."""
    params: dict[str, Any] = {"tsq": tsquery_any(lexemes), "n": limit}
    where = filter_sql(filters, params)
    if stats is None:
        return ("SELECT c.id, c.document_id, ts_rank(c.tsv, q) AS score FROM chunks c JOIN documents d ON d.id = c.document_id,"
                f" to_tsquery(%(tsq)s) q WHERE c.tsv @@ q AND {where} ORDER BY score DESC LIMIT %(n)s"), params
    n, avgdl, df = stats
    params.update(lex=lexemes, idf=[bm25_idf(n, df.get(lx, 0)) for lx in lexemes], k1=settings.bm25_k1, b=settings.bm25_b, avgdl=avgdl)
    return ("WITH q(lexeme, idf) AS (SELECT * FROM unnest(%(lex)s::text[], %(idf)s::float8[])),"
            " cand AS (SELECT c.id, c.document_id, c.tsv, c.doc_len FROM chunks c JOIN documents d ON d.id = c.document_id"
            f"          WHERE c.tsv @@ %(tsq)s::tsquery AND {where})"
            " SELECT cand.id, cand.document_id, sum(q.idf * t.tf * (%(k1)s + 1)"
            "        / (t.tf + %(k1)s * (1 - %(b)s + %(b)s * cand.doc_len / %(avgdl)s))) AS score"
            " FROM cand CROSS JOIN LATERAL (SELECT u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf"
            "                               FROM unnest(cand.tsv) u) t JOIN q ON q.lexeme = t.lexeme"
            " GROUP BY cand.id, cand.document_id ORDER BY score DESC LIMIT %(n)s"), params


def vector_sql(vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {"v": vec, "n": limit}
    where = filter_sql(filters, params)
    return ("SELECT c.id, c.document_id, 1 - (c.embedding <=> %(v)s) AS score FROM chunks c JOIN documents d ON d.id = c.document_id"
            f" WHERE c.embedding IS NOT NULL AND {where} ORDER BY c.embedding <=> %(v)s LIMIT %(n)s"), params


class Searcher:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings: Settings = rt.settings
        self._stats: dict[tuple[str, int], tuple[int, float, dict[str, int]]] = {}

    async def generation(self) -> int:
        async with self.rt.db.connection() as conn:
            row = await (await conn.execute("SELECT generation FROM index_state")).fetchone()
        return int(row[0]) if row else 0

    async def lexemes(self, query: str) -> list[str]:
        async with self.rt.db.connection() as conn:
            row = await (await conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (query,))).fetchone()
        return list(row[0]) if row else []

    async def corpus_stats(self, project: str, generation: int, lexemes: list[str]) -> tuple[int, float, dict[str, int]]:
        """(chunks, average length, df per lexeme) of the search scope, cached per index generation."""
        key = (project, generation)
        if key not in self._stats:
            self._stats = {k: v for k, v in self._stats.items() if k[1] == generation}  # older generations are stale
            async with self.rt.db.connection() as conn:
                row = await (await conn.execute("SELECT count(*), coalesce(avg(doc_len), 0) FROM chunks WHERE %s = '' OR project = %s",
                                                (project, project))).fetchone()
            assert row is not None
            self._stats[key] = (int(row[0]), float(row[1]) or 1.0, {})
        n, avgdl, df = self._stats[key]
        missing = [lx for lx in lexemes if lx not in df]
        if missing:
            async with self.rt.db.connection() as conn:
                rows = await (await conn.execute(
                    "SELECT l, (SELECT count(*) FROM chunks c WHERE c.tsv @@ quote_literal(l)::tsquery AND (%(p)s = '' OR c.project = %(p)s))"
                    " FROM unnest(%(lex)s::text[]) AS l", {"p": project, "lex": missing})).fetchall()
            df.update({lx: int(cnt) for lx, cnt in rows})
        return n, avgdl, df

    async def lexical(self, query: str, filters: common_pb2.Filters, generation: int, limit: int) -> list[Candidate]:
        lexemes = await self.lexemes(query)
        if not lexemes:
            return []
        stats = None if self.settings.search_lexical == "ts_rank" else await self.corpus_stats(filters.project, generation, lexemes)
        sql, params = lexical_sql(self.settings, lexemes, filters, limit, stats)
        async with self.rt.db.connection() as conn:
            rows = await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]
        return [Candidate(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    async def query_vector(self, query: str) -> np.ndarray:
        stub = await self.rt.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
        reply = await stub.Embed(embed_pb2.EmbedRequest(texts=[query], purpose=embed_pb2.EMBED_PURPOSE_QUERY))
        return np.asarray(reply.vectors[0].values, dtype=np.float32)

    async def vector(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> list[Candidate]:
        sql, params = vector_sql(vec, filters, limit)
        async with self.rt.db.connection() as conn, conn.transaction():
            await conn.execute(VECTOR_SESSION)
            rows = await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]
        out = [Candidate(str(r[0]), str(r[1]), float(r[2])) for r in rows]
        return sorted(out, key=lambda c: -c.score)  # relaxed order: restore it

    async def details(self, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        async with self.rt.db.connection() as conn:
            rows = await fetch_dicts(conn,
                "SELECT c.id, c.document_id, c.text, c.heading_path, c.line_start, c.line_end, c.char_start, c.char_end,"
                " d.title, d.path, d.project, d.type, d.tags FROM chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE c.id = ANY(%s)", ([uuid.UUID(i) for i in chunk_ids],))
        return {str(r["id"]): r for r in rows}

    async def search(self, req: search_pb2.SearchRequest, generation: int) -> search_pb2.SearchResponse:
        started = time.perf_counter()
        top_k = req.top_k or 10
        n = max(self.settings.search_candidates, top_k)
        mode = req.mode or search_pb2.SEARCH_MODE_HYBRID
        signals: dict[str, list[Candidate]] = {}
        tasks: dict[str, Any] = {}
        if mode in (search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_LEXICAL):
            tasks["lexical"] = self.lexical(req.query, req.filters, generation, n)
        if mode in (search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_VECTOR):
            tasks["vector"] = self._vector_for(req.query, req.filters, n)
        results = await asyncio.gather(*tasks.values())
        signals = dict(zip(tasks, results, strict=True))
        fused = fuse_rrf(signals, k=self.settings.search_rrf_k, limit=top_k)
        info = await self.details([f.chunk_id for f in fused])
        hits = [self._hit(f, info[f.chunk_id], req.query, list(signals), mode) for f in fused if f.chunk_id in info]
        return search_pb2.SearchResponse(hits=hits, index_generation=generation, took_ms=(time.perf_counter() - started) * 1000)

    async def _vector_for(self, query: str, filters: common_pb2.Filters, n: int) -> list[Candidate]:
        return await self.vector(await self.query_vector(query), filters, n)

    @staticmethod
    def _hit(f: Fused, row: dict[str, Any], query: str, names: list[str], mode: int) -> search_pb2.Hit:
        text, l0, l1 = snippet(row["text"], query, row["line_start"])
        score = f.score if mode == search_pb2.SEARCH_MODE_HYBRID else next(iter(f.signals.values()))[0]
        return search_pb2.Hit(
            source=common_pb2.SourceRef(chunk_id=f.chunk_id, document_id=f.document_id, title=row["title"], path=row["path"],
                                        line_start=l0, line_end=l1, char_start=row["char_start"], char_end=row["char_end"],
                                        heading_path=row["heading_path"]),
            snippet=text, score=score, project=row["project"], type=row["type"], tags=row["tags"],
            signals=[search_pb2.Signal(name=name, score=f.signals.get(name, (0.0, 0))[0], rank=f.signals.get(name, (0.0, 0))[1])
                     for name in names])


def cache_key(req: search_pb2.SearchRequest, generation: int, lexical: str) -> str:
    canon = MessageToJson(req, sort_keys=True, indent=None) + lexical
    return f"{generation}:{hashlib.sha256(canon.encode()).hexdigest()}"


class SearchHandlers:
    def __init__(self, rt: Runtime, searcher: Searcher) -> None:
        self.rt, self.searcher = rt, searcher

    async def Search(self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext) -> search_pb2.SearchResponse:
        if not request.query.strip():
            raise InvalidArgument("search: query is empty")
        if request.top_k > MAX_TOP_K:
            raise InvalidArgument(f"search: top_k {request.top_k} is over the limit of {MAX_TOP_K}")
        f = request.filters
        for a, b in (("created_after", "created_before"), ("updated_after", "updated_before")):
            if f.HasField(a) and f.HasField(b) and getattr(f, a).ToNanoseconds() >= getattr(f, b).ToNanoseconds():
                raise InvalidArgument(f"search: filters.{a} must be before filters.{b}")
        request.bypass_cache, bypass = False, request.bypass_cache
        generation = await self.searcher.generation()
        key = cache_key(request, generation, self.rt.settings.search_lexical)
        assert self.rt.cache is not None
        if not bypass and (hit := await self.rt.cache.get(key)) is not None:
            reply = search_pb2.SearchResponse.FromString(hit)
            reply.cached = True
            return reply
        try:
            reply = await self.searcher.search(request, generation)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"search: the embed service did not answer ({exc.code().name})") from None
        await self.rt.cache.set(key, reply.SerializeToString(), self.rt.settings.search_cache_ttl_s)
        return reply

    async def Related(self, request: search_pb2.RelatedRequest, context: grpc.aio.ServicerContext) -> search_pb2.RelatedResponse:
        key, value = ("id", request.document_id) if request.document_id else ("path", request.path)
        if not value:
            raise InvalidArgument("search: give a document_id or a path")
        if key == "id":
            try:
                uuid.UUID(value)
            except ValueError:
                raise InvalidArgument(f"search: {value!r} is not a document id") from None
        async with self.rt.db.connection() as conn:
            doc = await (await conn.execute(f"SELECT id FROM documents WHERE {key} = %s LIMIT 1", (value,))).fetchone()
            if doc is None:
                raise NotFound(f"search: no document with {key} {value!r}")
            rows = await (await conn.execute(
                "SELECT d.id, d.title, d.path, l.score FROM links l JOIN documents d ON d.id = l.target_id"
                " WHERE l.source_id = %s AND l.score >= %s ORDER BY l.score DESC LIMIT %s",
                (doc[0], request.min_score, request.limit or 10))).fetchall()
        return search_pb2.RelatedResponse(related=[search_pb2.RelatedDocument(document_id=str(i), title=t, path=p, score=s)
                                                   for i, t, p, s in rows])


async def setup(rt: Runtime) -> None:
    searcher = Searcher(rt)
    h = SearchHandlers(rt, searcher)
    rt.host.add_service(search_pb2, search_pb2_grpc, "SearchService", Search=h.Search, Related=h.Related)


def run() -> None:
    main(SERVICE, NEEDS, setup)
