"""Wires hybrid search to PostgreSQL (BM25 over the postings table + pgvector HNSW), the embed
service (query vectors) and Redis (results keyed by the index generation)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToJson

from services.search.fusion import Candidate, Fused, fuse_rrf, fuse_scores, snippet
from services.search.store import SearchStore
from shared.errors import InvalidArgument, NotFound, Unavailable
from shared.gen.tessera.v1 import common_pb2, embed_pb2, embed_pb2_grpc, search_pb2, search_pb2_grpc
from shared.runtime import analyzer
from shared.runtime.config import Settings
from shared.runtime.service import Runtime, main

SERVICE = "search"
NEEDS = ("postgres", "nats", "redis")
MAX_TOP_K = 100
#: a pasted paragraph is cut to its first this many distinct terms
MAX_QUERY_TERMS = 64
#: longest query accepted, in characters
#: The range of google.protobuf.Timestamp: 0001-01-01 to 9999-12-31.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
MAX_QUERY_CHARS = 8192
log = logging.getLogger("tessera.search")


class Searcher:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings: Settings = rt.settings
        self.store = SearchStore(rt.db, rt.settings)

    async def generation(self) -> int:
        return await self.store.generation()

    async def lexical(self, query: str, filters: common_pb2.Filters, limit: int, explain: bool = False) -> list[Candidate]:
        terms = analyzer.query_terms(query, MAX_QUERY_TERMS)
        if not terms:
            return []  # only stop words or punctuation: nothing to match
        return await self.store.lexical(terms, filters, limit, explain)

    async def query_vector(self, query: str) -> np.ndarray:
        stub = await self.rt.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
        reply = await stub.Embed(embed_pb2.EmbedRequest(texts=[query], purpose=embed_pb2.EMBED_PURPOSE_QUERY))
        return np.asarray(reply.vectors[0].values, dtype=np.float32)

    async def search(self, req: search_pb2.SearchRequest, generation: int) -> search_pb2.SearchResponse:
        started = time.perf_counter()
        top_k = req.top_k or 10
        n = max(self.settings.search.candidates, top_k)
        mode = req.mode or search_pb2.SEARCH_MODE_HYBRID
        qvec: np.ndarray | None = None

        async def vector() -> list[Candidate]:
            nonlocal qvec
            qvec = await self.query_vector(req.query)
            return await self.store.vector(qvec, req.filters, n)

        tasks: dict[str, Any] = {}
        if mode in (search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_LEXICAL):
            tasks["lexical"] = self.lexical(req.query, req.filters, n, req.explain)
        if mode in (search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_VECTOR):
            tasks["vector"] = vector()
        results = await asyncio.gather(*tasks.values())
        signals: dict[str, list[Candidate]] = dict(zip(tasks, results, strict=True))
        s = self.settings.search
        if mode == search_pb2.SEARCH_MODE_HYBRID and s.feedback_docs and s.feedback_weight and qvec is not None:
            # pseudo-relevance feedback: the query vector moves toward the best fused documents, and searches again
            top = [f.document_id for f in self.fuse(signals, s.feedback_docs)]
            if top:
                signals["vector"] = await self.store.vector(qvec, req.filters, n, feedback=(top, s.feedback_weight))
        fused = self.fuse(signals, top_k)
        info = await self.store.details([f.chunk_id for f in fused])
        hits = [self._hit(f, info[f.chunk_id], req.query, list(signals), mode, req.explain) for f in fused if f.chunk_id in info]
        return search_pb2.SearchResponse(hits=hits, index_generation=generation, took_ms=(time.perf_counter() - started) * 1000)

    def fuse(self, signals: dict[str, list[Candidate]], limit: int) -> list[Fused]:
        s = self.settings.search
        if s.fusion == "rrf":
            return fuse_rrf(signals, k=s.rrf_k, limit=limit, weights={"lexical": 2 * s.lexical_weight, "vector": 2 * (1 - s.lexical_weight)})
        return fuse_scores(signals, {"lexical": s.lexical_weight, "vector": 1 - s.lexical_weight}, limit)

    @staticmethod
    def _hit(f: Fused, row: dict[str, Any], query: str, names: list[str], mode: int, explain: bool) -> search_pb2.Hit:
        text, l0, l1 = snippet(row["text"], query, row["line_start"])
        score = f.score if mode == search_pb2.SEARCH_MODE_HYBRID else next(iter(f.signals.values()))[0]
        return search_pb2.Hit(
            source=common_pb2.SourceRef(chunk_id=f.chunk_id, document_id=f.document_id, title=row["title"], path=row["path"],
                                        line_start=l0, line_end=l1, char_start=row["char_start"], char_end=row["char_end"],
                                        heading_path=row["heading_path"]),
            snippet=text, score=score, project=row["project"], type=row["type"], tags=row["tags"],
            signals=[search_pb2.Signal(
                name=name, score=f.signals.get(name, (0.0, 0))[0], rank=f.signals.get(name, (0.0, 0))[1],
                contribution=f.contributions.get(name, 0.0) if explain else 0.0,
                terms=[search_pb2.TermWeight(term=t, weight=w) for t, w in f.terms] if explain and name == "lexical" else [])
                for name in names])


def cache_key(req: search_pb2.SearchRequest, generation: int, settings: Settings) -> str:
    """Results are keyed by the request, the index generation and every setting that changes a ranking."""
    s = settings.search
    ranking = (s.fusion, s.lexical_weight, s.rrf_k, s.feedback_docs, s.feedback_weight, s.candidates, s.ef_search, s.lexical_depth,
               s.bm25_k1, s.bm25_b)
    canon = MessageToJson(req, sort_keys=True, indent=None) + repr(ranking)
    return f"{generation}:{hashlib.sha256(canon.encode()).hexdigest()}"


class SearchHandlers:
    def __init__(self, rt: Runtime, searcher: Searcher) -> None:
        self.rt, self.searcher = rt, searcher

    async def Search(self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext) -> search_pb2.SearchResponse:
        if not request.query.strip():
            raise InvalidArgument("search: query is empty")
        if len(request.query) > MAX_QUERY_CHARS:
            raise InvalidArgument(f"search: query is {len(request.query)} characters; the limit is {MAX_QUERY_CHARS}")
        if request.top_k > MAX_TOP_K:
            raise InvalidArgument(f"search: top_k {request.top_k} is over the limit of {MAX_TOP_K}")
        f = request.filters
        for name, values in (("project", [f.project]), ("types", list(f.types)), ("tags", list(f.tags))):
            if any("\x00" in v for v in values):
                raise InvalidArgument(f"search: filters.{name} contains a NUL character")
        for name in ("created_after", "created_before", "updated_after", "updated_before"):
            ts = getattr(f, name)
            if f.HasField(name) and not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
                raise InvalidArgument(f"search: filters.{name} is not a valid time (seconds {ts.seconds}, nanos {ts.nanos}); "
                                      "it must lie between the years 1 and 9999")
        for a, b in (("created_after", "created_before"), ("updated_after", "updated_before")):
            if f.HasField(a) and f.HasField(b) and getattr(f, a).ToNanoseconds() >= getattr(f, b).ToNanoseconds():
                raise InvalidArgument(f"search: filters.{a} must be before filters.{b}")
        request.bypass_cache, bypass = False, request.bypass_cache
        generation = await self.searcher.generation()
        key = cache_key(request, generation, self.rt.settings)
        assert self.rt.cache is not None
        if not bypass and (hit := await self.rt.cache.get(key)) is not None:
            reply = search_pb2.SearchResponse.FromString(hit)
            reply.cached = True
            return reply
        try:
            reply = await self.searcher.search(request, generation)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"search: the embed service did not answer ({exc.code().name})") from None
        await self.rt.cache.set(key, reply.SerializeToString(), self.rt.settings.search.cache_ttl_s)
        return reply

    async def Related(self, request: search_pb2.RelatedRequest, context: grpc.aio.ServicerContext) -> search_pb2.RelatedResponse:
        key, value = ("id", request.document_id) if request.document_id else ("path", request.path)
        if not value:
            raise InvalidArgument("search: give a document_id or a path")
        if "\x00" in value:
            raise InvalidArgument(f"search: the {key} contains a NUL character")
        if key == "id":
            try:
                uuid.UUID(value)
            except ValueError:
                raise InvalidArgument(f"search: {value!r} is not a document id") from None
        rows = await self.searcher.store.related(document_id=uuid.UUID(value) if key == "id" else None, path=value if key == "path" else "",
                                                 min_score=request.min_score, limit=request.limit or 10)
        if rows is None:
            raise NotFound(f"search: no document with {key} {value!r}")
        return search_pb2.RelatedResponse(related=[search_pb2.RelatedDocument(document_id=i, title=t, path=p, score=s)
                                                   for i, t, p, s in rows])


async def setup(rt: Runtime) -> None:
    searcher = Searcher(rt)
    h = SearchHandlers(rt, searcher)
    rt.host.add_service(search_pb2, search_pb2_grpc, "SearchService", Search=h.Search, Related=h.Related)


def run() -> None:
    main(SERVICE, NEEDS, setup)
