"""Wires hybrid search to PostgreSQL (BM25 over the postings table + pgvector HNSW), the embed
service (query vectors) and Redis (results keyed by the index generation)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import math
import time
from typing import Any

import grpc
import numpy as np
from google.protobuf.json_format import MessageToJson
from nats.aio.msg import Msg

from services.search.activity import Activity, logged_search, question_logged
from services.search.cluster_upkeep import ClusterUpkeep
from services.search.fusion import Candidate, Fused, fuse_rrf, fuse_scores, snippet
from services.search.query_vectors import QueryVectors
from services.search.review import render_review
from services.search.store import SearchStore, Walked
from shared.contracts import INDEX_SUBJECT, QUESTION_QUEUE, QUESTION_SUBJECT, IndexUpdated, UnansweredQuestion
from shared.conversions import check_text, enrichment_proto, parse_id, timestamp
from shared.errors import InvalidArgument, NotFound, Unavailable
from shared.gen.tessera.v1 import common_pb2, embed_pb2, embed_pb2_grpc, search_pb2, search_pb2_grpc
from shared.runtime import analyzer, db, principal
from shared.runtime.channels import Channels
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


class IndexGeneration:
    """The index generation this instance serves, kept in memory: read once at start, advanced by ingest's
    INDEX_SUBJECT events, and read again every RECHECK_S in case an event was missed (NATS reconnecting).
    A cached search touches no database."""

    RECHECK_S = 5.0

    def __init__(self, store: SearchStore) -> None:
        self.store, self.value = store, 0

    def heard(self, generation: int) -> None:
        self.value = max(self.value, generation)

    async def recheck(self) -> None:
        self.heard(await self.store.generation())


class Searcher:
    """One search's whole work: the query's vector, both signals, fusion, feedback and the hits' details."""

    def __init__(self, settings: Settings, store: SearchStore, channels: Channels) -> None:
        self.settings, self.store, self.channels = settings, store, channels
        self.index = IndexGeneration(store)
        self.vectors = QueryVectors(settings, self.embed_query)

    async def lexical(self, query: str, filters: common_pb2.Filters, limit: int, explain: bool = False) -> list[Candidate]:
        terms = analyzer.query_terms(query, MAX_QUERY_TERMS)
        if not terms:
            return []  # only stop words or punctuation: nothing to match
        return await self.store.lexical(terms, filters, limit, explain)

    async def embed_query(self, query: str) -> np.ndarray:
        """The query's vector from the embed service (where this process has no encoder of its own)."""
        wait = self.settings.search.embed_timeout_s
        try:
            stub = await asyncio.wait_for(self.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub), wait)
            reply = await stub.Embed(embed_pb2.EmbedRequest(texts=[query], purpose=embed_pb2.EMBED_PURPOSE_QUERY), timeout=wait)
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() not in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                raise
            # Not retried by the caller's channel: that would wait for embed again; the client above it retries.
            raise Unavailable(f"search: the embed service did not give the query's vector within {wait:g} s (restarting?); retry",
                              retry_here=False) from None
        return np.asarray(reply.vectors[0].values, dtype=np.float32)

    async def search(self, req: search_pb2.SearchRequest, generation: int) -> search_pb2.SearchResponse:
        started = time.perf_counter()
        s = self.settings.search
        top_k = req.top_k or 10
        n = max(s.candidates, top_k)
        mode = req.mode or search_pb2.SEARCH_MODE_HYBRID
        feedback = mode == search_pb2.SEARCH_MODE_HYBRID and s.feedback_docs > 0 and s.feedback_weight != 0
        # With feedback, one walk finds more than the signal keeps: feedback re-ranks those instead of walking again.
        walk = max(n, s.feedback_candidates) if feedback else n
        qvec: np.ndarray | None = None
        degraded = ""
        walked: Walked | None = None  # with feedback: what the walk found, with the chunks' vectors

        async def vector() -> list[Candidate]:
            nonlocal qvec, degraded, walked
            try:
                qvec = await self.vectors.get(req.query)
            except Unavailable as exc:
                if mode != search_pb2.SEARCH_MODE_HYBRID:
                    raise
                degraded = f"lexical results only, no vector signal: {exc.message}"
                return []
            if not feedback:
                return await self.store.vector(qvec, req.filters, walk)
            walked = await self.store.walk(qvec, req.filters, walk)
            return walked.found

        tasks: dict[str, Any] = {}
        if mode in (search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_LEXICAL):
            tasks["lexical"] = self.lexical(req.query, req.filters, n, req.explain)
        if mode in (search_pb2.SEARCH_MODE_HYBRID, search_pb2.SEARCH_MODE_VECTOR):
            tasks["vector"] = vector()
        results = await asyncio.gather(*tasks.values())
        signals: dict[str, list[Candidate]] = dict(zip(tasks, results, strict=True))
        found = signals.pop("vector", [])
        if not degraded and "vector" in tasks:
            signals["vector"] = found[:n]
        if walked is not None and qvec is not None:  # (qvec is set whenever walked is; the check narrows its type)
            # pseudo-relevance feedback: the query vector moves toward the best fused documents' mean chunk vector
            top = [f.document_id for f in self.fuse(signals, s.feedback_docs)]
            if top:
                signals["vector"] = (await self.store.feedback(qvec, top, s.feedback_weight, walked))[:n]
        half_life = req.recency_half_life_days
        fused = self.fuse(signals, min(n, top_k * 5) if half_life > 0 else top_k)
        factors: dict[str, float] = {}
        if half_life > 0:  # decay on the note's age, then the best top_k again
            now = dt.datetime.now(dt.UTC)
            ages = await self.store.updated_at([f.document_id for f in fused])
            for f in fused:
                factors[f.document_id] = recency_factor(ages.get(f.document_id, now), now, half_life)
        info = await self.store.details([f.chunk_id for f in fused])
        hits = [self._hit(f, info[f.chunk_id], req.query, list(signals), mode, req.explain, factors.get(f.document_id, 1.0))
                for f in fused if f.chunk_id in info]
        if factors:
            hits = sorted(hits, key=lambda h: -h.score)[:top_k]
        return search_pb2.SearchResponse(hits=hits, index_generation=generation, took_ms=(time.perf_counter() - started) * 1000,
                                         degraded=degraded)

    def fuse(self, signals: dict[str, list[Candidate]], limit: int) -> list[Fused]:
        s = self.settings.search
        if s.fusion == "rrf":
            return fuse_rrf(signals, k=s.rrf_k, limit=limit, weights={"lexical": 2 * s.lexical_weight, "vector": 2 * (1 - s.lexical_weight)})
        return fuse_scores(signals, {"lexical": s.lexical_weight, "vector": 1 - s.lexical_weight}, limit)

    @staticmethod
    def _hit(f: Fused, row: dict[str, Any], query: str, names: list[str], mode: int, explain: bool, recency: float = 1.0) -> search_pb2.Hit:
        text, l0, l1 = snippet(row["text"], query, row["line_start"])
        base = f.score if mode == search_pb2.SEARCH_MODE_HYBRID else next(iter(f.signals.values()))[0]
        score = base * recency
        signals = [search_pb2.Signal(
            name=name, score=f.signals.get(name, (0.0, 0))[0], rank=f.signals.get(name, (0.0, 0))[1],
            contribution=f.contributions.get(name, 0.0) if explain else 0.0,
            terms=[search_pb2.TermWeight(term=t, weight=w) for t, w in f.terms] if explain and name == "lexical" else [])
            for name in names]
        if recency != 1.0 and explain:  # the factor, and what it took from (or added to) the fused score
            signals.append(search_pb2.Signal(name="recency", score=recency, contribution=score - base))
        return search_pb2.Hit(
            source=common_pb2.SourceRef(chunk_id=f.chunk_id, document_id=f.document_id, title=row["title"], path=row["path"],
                                        line_start=l0, line_end=l1, char_start=row["char_start"], char_end=row["char_end"],
                                        heading_path=row["heading_path"]),
            snippet=text, score=score, project=row["project"], type=row["type"], tags=row["tags"], signals=signals,
            enrichment=enrichment_proto(row), updated_at=timestamp(row["updated_at"]), recency=recency)


def recency_factor(updated_at: dt.datetime, now: dt.datetime, half_life_days: float) -> float:
    """0.5 ^ (age in days / half-life): 1 for a note changed now, 0.5 at one half-life."""
    age_days = max(0.0, (now - updated_at).total_seconds() / 86400)
    return float(0.5 ** (age_days / half_life_days))


def cache_key(req: search_pb2.SearchRequest, generation: int, settings: Settings) -> str:
    """Results are keyed by the request, the index generation, every setting that changes a ranking, and what the
    caller may see (row-level security filtered the results)."""
    s = settings.search
    ranking = (s.fusion, s.lexical_weight, s.rrf_k, s.feedback_docs, s.feedback_weight, s.candidates, s.ef_search, s.lexical_depth,
               s.bm25_k1, s.bm25_b)
    canon = MessageToJson(req, sort_keys=True, indent=None) + repr(ranking) + principal.current.get().scope()
    return f"{generation}:{hashlib.sha256(canon.encode()).hexdigest()}"


class SearchHandlers:
    def __init__(self, rt: Runtime, searcher: Searcher, activity: Activity, topics: ClusterUpkeep) -> None:
        self.rt, self.searcher, self.activity, self.topics = rt, searcher, activity, topics

    async def Search(self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext) -> search_pb2.SearchResponse:
        if not request.query.strip():
            raise InvalidArgument("search: query is empty")
        if len(request.query) > MAX_QUERY_CHARS:
            raise InvalidArgument(f"search: query is {len(request.query)} characters; the limit is {MAX_QUERY_CHARS}")
        if request.top_k > MAX_TOP_K:
            raise InvalidArgument(f"search: top_k {request.top_k} is over the limit of {MAX_TOP_K}")
        f = request.filters
        check_text("search", **{"filters.project": f.project, "filters.types": list(f.types), "filters.tags": list(f.tags)})
        for name in ("created_after", "created_before", "updated_after", "updated_before"):
            ts = getattr(f, name)
            if f.HasField(name) and not (MIN_SECONDS <= ts.seconds <= MAX_SECONDS and 0 <= ts.nanos < 1_000_000_000):
                raise InvalidArgument(f"search: filters.{name} is not a valid time (seconds {ts.seconds}, nanos {ts.nanos}); "
                                      "it must lie between the years 1 and 9999")
        for a, b in (("created_after", "created_before"), ("updated_after", "updated_before")):
            if f.HasField(a) and f.HasField(b) and getattr(f, a).ToNanoseconds() >= getattr(f, b).ToNanoseconds():
                raise InvalidArgument(f"search: filters.{a} must be before filters.{b}")
        if not math.isfinite(request.recency_half_life_days) or request.recency_half_life_days < 0:
            raise InvalidArgument(f"search: recency_half_life_days is {request.recency_half_life_days}; a number of days > 0, or 0 for none")
        request.bypass_cache, bypass = False, request.bypass_cache
        await self.rt.foreground.searched()  # background embedding and enrichment wait while people search
        reply = await self._search(request, bypass)
        self.activity.record(logged_search(request, reply, self.rt.settings.chat.relevance_floor))
        return reply

    async def _search(self, request: search_pb2.SearchRequest, bypass: bool) -> search_pb2.SearchResponse:
        generation = self.searcher.index.value
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
        if not reply.degraded:  # a lexical-only answer is not kept: the next search has its vector signal again
            await self.rt.cache.set(key, reply.SerializeToString(), self.rt.settings.search.cache_ttl_s)
        return reply

    async def Related(self, request: search_pb2.RelatedRequest, context: grpc.aio.ServicerContext) -> search_pb2.RelatedResponse:
        key, value = ("id", request.document_id) if request.document_id else ("path", request.path)
        if not value:
            raise InvalidArgument("search: give a document_id or a path")
        check_text("search", **{f"the {key}": value})
        doc_id = parse_id(value, "document", "search") if key == "id" else None
        rows = await self.searcher.store.related(document_id=doc_id, path=value if key == "path" else "",
                                                 min_score=request.min_score, limit=request.limit or 10)
        if rows is None:
            raise NotFound(f"search: no document with {key} {value!r}")
        return search_pb2.RelatedResponse(related=[search_pb2.RelatedDocument(document_id=i, title=t, path=p, score=s)
                                                   for i, t, p, s in rows])

    async def Map(self, request: search_pb2.MapRequest, context: grpc.aio.ServicerContext) -> search_pb2.MapResponse:
        check_text("search", project=request.project)
        if request.examples > 50:
            raise InvalidArgument(f"search: examples is {request.examples}; at most 50")
        since = _days(request.since_days, "since_days", 7.0)
        if request.rebuild:
            await self.topics.maintain_once(force=True, only=request.project or None)
        return await self.topics.map(request.project, request.examples or 3, since, with_points=request.points)

    async def Stale(self, request: search_pb2.StaleRequest, context: grpc.aio.ServicerContext) -> search_pb2.StaleResponse:
        check_text("search", project=request.project)
        if request.limit > 1000:
            raise InvalidArgument(f"search: limit is {request.limit}; at most 1000")
        if request.days > 36_500:
            raise InvalidArgument(f"search: days is {request.days}; at most 36500")
        days = request.days or self.rt.settings.knowledge.stale_days
        rows, total = await self.activity.stale(request.project, days, request.limit or 50)
        return search_pb2.StaleResponse(days=days, total=total, documents=[search_pb2.StaleDocument(
            document_id=str(r["id"]), title=r["title"], path=r["path"], updated_at=timestamp(r["updated_at"]),
            last_hit=timestamp(r["last_hit"])) for r in rows])

    async def Review(self, request: search_pb2.ReviewRequest, context: grpc.aio.ServicerContext) -> search_pb2.ReviewResponse:
        check_text("search", project=request.project, claim=request.claim)
        since_days = _days(request.since_days, "since_days", 7.0)
        if len(request.claim) > 200:
            raise InvalidArgument("search: claim is over 200 characters")
        store = self.searcher.store
        if request.claim and not await store.claim(request.claim):
            return search_pb2.ReviewResponse(claimed=False)
        await self.activity.flush()  # this instance's latest searches count
        now = dt.datetime.now(dt.UTC)
        since = now - dt.timedelta(days=since_days)
        stale_days = self.rt.settings.knowledge.stale_days
        markdown, title = render_review(await store.review_data(since, request.project, stale_days), since, now, request.project, stale_days)
        return search_pb2.ReviewResponse(markdown=markdown, title=title, claimed=bool(request.claim), since=timestamp(since))


def _days(value: float, name: str, default: float) -> float:
    if not math.isfinite(value) or value < 0 or value > 36_500:
        raise InvalidArgument(f"search: {name} is {value}; a number of days between 0 and 36500 (0: {default:g})")
    return value or default


async def setup(rt: Runtime) -> None:
    reads = await db.open_read_pool(rt.settings, rt.instance_id)
    rt.host.on_close(reads.close)
    searcher = Searcher(rt.settings, SearchStore(rt.db, rt.settings, reads), rt.channels)
    activity = Activity(rt)
    topics = ClusterUpkeep(rt)
    await searcher.index.recheck()
    searcher.vectors.start()
    rt.host.on_stop_accepting(searcher.vectors.stop)
    h = SearchHandlers(rt, searcher, activity, topics)
    rt.host.add_service(search_pb2, search_pb2_grpc, "SearchService", Search=h.Search, Related=h.Related, Map=h.Map, Stale=h.Stale,
                        Review=h.Review)

    async def index_updated(msg: Msg) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # not an event of ours: the recheck keeps us right
            searcher.index.heard(IndexUpdated.from_bytes(msg.data).generation)

    async def unanswered(msg: Msg) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            activity.record(question_logged(UnansweredQuestion.from_bytes(msg.data)))

    subs = [await rt.nats.subscribe(INDEX_SUBJECT, cb=index_updated),
            await rt.nats.subscribe(QUESTION_SUBJECT, queue=QUESTION_QUEUE, cb=unanswered)]

    async def unsubscribe() -> None:
        for sub in subs:
            await sub.unsubscribe()

    rt.host.on_stop_accepting(unsubscribe)
    rt.host.every(IndexGeneration.RECHECK_S, searcher.index.recheck, name="index generation recheck")
    rt.host.every(1.0, activity.write_round, name="search log")
    rt.host.every(rt.settings.knowledge.cluster_assign_s, topics.maintain_once, name="cluster upkeep", first_s=0.0)

    async def last_rows(left: float) -> None:
        await activity.flush()

    rt.host.on_drain(last_rows)


def run() -> None:
    main(SERVICE, NEEDS, setup)
