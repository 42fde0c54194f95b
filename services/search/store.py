"""Search's SQL: BM25 over the postings table, pgvector HNSW, hit details and links.

The query builders are pure (tested for their SQL and parameters); SearchStore
runs them on the pool.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.search.activity import STALE
from services.search.fusion import Candidate
from services.search.review import NEAR_DUPLICATE, REVIEW_ROWS, ReviewData
from shared.gen.tessera.v1 import common_pb2
from shared.runtime import db
from shared.runtime.config import Settings
from shared.runtime.db import fetch_dicts


def filter_sql(f: common_pb2.Filters, params: dict[str, Any]) -> str:
    """WHERE conditions on chunks c joined to documents d."""
    conds = []
    if f.project:
        conds.append("c.project = %(project)s")
        params["project"] = f.project
    if f.types:  # the document's own type, or the kind enrichment gave it
        conds.append("(d.type = ANY(%(types)s) OR d.kind = ANY(%(types)s))")
        params["types"] = list(f.types)
    if f.tags:  # the user's tags and enrichment's together
        conds.append("(d.tags || d.auto_tags) @> %(tags)s")
        params["tags"] = list(f.tags)
    for name, column, op in (("created_after", "d.created_at", ">="), ("created_before", "d.created_at", "<"),
                             ("updated_after", "d.updated_at", ">="), ("updated_before", "d.updated_at", "<")):
        if f.HasField(name):
            conds.append(f"{column} {op} %({name})s")
            params[name] = getattr(f, name).ToDatetime(tzinfo=dt.UTC)
    return " AND ".join(conds) if conds else "true"


def bm25_idf(n: float, df: float) -> float:
    """BM25's idf as Lucene and bm25s compute it: never negative."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


#: BM25's weight of one posting {p} of a query term (w.idf) with the live avgdl (st)
BM25_WEIGHT = "w.idf * {p}.tf * (%(k1)s + 1) / ({p}.tf + %(k1)s * (1 - %(b)s + %(b)s * {p}.dl / st.avgdl))"


def lexical_head(settings: Settings, terms: dict[str, int], filters: common_pb2.Filters, limit: int) -> tuple[str, dict[str, Any], str]:
    """What every BM25 query starts with: the CTEs q (terms), st (live N and avgdl) and w (each term's idf, from live
    df), ending in a comma; its parameters; and the join that applies the filters other than the project to ``x``."""
    s = settings.search
    params: dict[str, Any] = {"terms": list(terms), "qtf": [float(v) for v in terms.values()], "n": limit,
                              "depth": s.lexical_depth, "k1": s.bm25_k1, "b": s.bm25_b, "project": filters.project}
    rest = common_pb2.Filters()
    rest.CopyFrom(filters)
    rest.ClearField("project")
    where = filter_sql(rest, params)
    in_project = " AND project = %(project)s" if filters.project else ""
    head = (
        "WITH q(term, qtf) AS (SELECT * FROM unnest(%(terms)s::text[], %(qtf)s::float8[])),"
        " st AS (SELECT coalesce(sum(chunks), 0)::float8 AS n, coalesce(sum(terms) / nullif(sum(chunks), 0), 1)::float8 AS avgdl"
        f"       FROM lexical_stats WHERE true{in_project}),"
        " w AS (SELECT q.term, q.qtf * ln(1 + (st.n - d.df + 0.5) / (d.df + 0.5)) AS idf FROM q JOIN"
        "       (SELECT term, sum(df)::float8 AS df FROM term_stats WHERE term = ANY(%(terms)s)"
        f"        {in_project} GROUP BY term) d USING (term), st WHERE d.df > 0),")
    docs = f" JOIN documents d ON d.id = x.document_id WHERE {where}" if where != "true" else ""
    return head, params, docs


def lexical_sql(settings: Settings, terms: dict[str, int], filters: common_pb2.Filters, limit: int,
                explain: bool = False) -> tuple[str, dict[str, Any]]:
    """Exact BM25 over the postings table, reading at most ``search.lexical_depth`` postings per query term.

    Candidates come from each term's postings in impact order (the BM25 weight without
    idf); the best ``limit`` by their partial sums (idf × impact) are then scored exactly from their
    own postings (tf, dl) and the live corpus statistics (N, avgdl, df). When no term
    has more postings than the depth, candidates and scores equal a full BM25.
    """
    head, params, docs = lexical_head(settings, terms, filters, limit)
    weight = BM25_WEIGHT.format(p="p")
    explained = f", array_agg(p.term ORDER BY p.term) AS terms, array_agg({weight} ORDER BY p.term) AS weights" if explain else ""
    sql = (
        head +
        # partial sums rank candidates only: idf × the stored impact (no per-posting BM25 arithmetic)
        " x AS (SELECT r.chunk_id, r.document_id, sum(w.idf * r.impact) AS partial"
        "       FROM w CROSS JOIN LATERAL (SELECT p.chunk_id, p.document_id, p.impact FROM postings p"
        f"                                  WHERE p.term = w.term{' AND p.project = %(project)s' if filters.project else ''}"
        "                                  ORDER BY p.impact DESC LIMIT %(depth)s) r GROUP BY 1, 2),"
        f" top AS MATERIALIZED (SELECT x.chunk_id, x.document_id FROM x{docs} ORDER BY x.partial DESC LIMIT %(n)s)"
        # each candidate's own postings through (chunk_id, term): the planner cannot see how few rows w and top hold, and
        # joined as sets it once compared every read posting with every candidate (57 ms for a 10-term query)
        f" SELECT top.chunk_id::text, top.document_id::text, s.score{', s.terms, s.weights' if explain else ''} FROM top CROSS JOIN LATERAL"
        f" (SELECT sum({weight}) AS score{explained} FROM postings p JOIN w ON w.term = p.term, st"
        "  WHERE p.chunk_id = top.chunk_id AND p.term = ANY(%(terms)s)) s"
        " ORDER BY s.score DESC, 1")
    return sql, params


def vector_sql(vec: np.ndarray, filters: common_pb2.Filters, limit: int, with_vectors: bool = False) -> tuple[str, dict[str, Any]]:
    """Nearest chunks by cosine (embed's chunk_vectors), written so that the HNSW index drives the scan (one table
    ordered by distance with a LIMIT); filters on the document are an EXISTS the index scan checks as it goes.
    Ids come as text. ``with_vectors``: each row carries the chunk's embedding too (for feedback), as pgvector's binary
    form (``vector_send``: a 4-byte header, then big-endian float32s), which ``Walked.of`` reads in one numpy call."""
    params: dict[str, Any] = {"v": vec, "n": limit}
    conds = ["v.indexed"]  # the HNSW graph holds one vector of a document's identical ones (migration 0011)
    if filters.project:
        conds.append("v.project = %(project)s")
        params["project"] = filters.project
    rest = common_pb2.Filters()
    rest.CopyFrom(filters)
    rest.ClearField("project")
    where = filter_sql(rest, params)
    if where != "true":
        conds.append(f"EXISTS (SELECT 1 FROM documents d WHERE d.id = v.document_id AND {where})")
    return (f"SELECT v.chunk_id::text, v.document_id::text, 1 - (v.embedding <=> %(v)s) AS score"
            f"{', vector_send(v.embedding)' if with_vectors else ''}"
            f" FROM chunk_vectors v WHERE {' AND '.join(conds)} ORDER BY v.embedding <=> %(v)s LIMIT %(n)s"), params


@dataclass(frozen=True)
class Walked:
    """What the query's HNSW walk found, best first, with each chunk's embedding (row i of ``vectors``)."""

    found: list[Candidate]
    vectors: np.ndarray

    @classmethod
    def of(cls, rows: list[Any], dim: int) -> Walked:
        """From ``vector_sql(with_vectors=True)``'s rows, read in binary, in any order."""
        rows = sorted(rows, key=lambda r: -r[2])  # relaxed order: restore it
        if not rows:
            return cls([], np.zeros((0, dim), np.float32))
        record = np.dtype([("header", ">i4"), ("x", ">f4", (dim,))])
        return cls([Candidate(r[0], r[1], float(r[2])) for r in rows],
                   np.frombuffer(b"".join(r[3] for r in rows), dtype=record)["x"].astype(np.float32))


def moved_ranking(q: np.ndarray, mean: np.ndarray, weight: float, walked: Walked) -> list[Candidate]:
    """The walked chunks ranked by their cosine to q + weight × mean (``rank_score``; each keeps its cosine to q as
    ``score``). Chunk vectors are unit, so that cosine is c·(q + w m) / |q + w m|."""
    target = q + weight * mean
    norm = float(np.linalg.norm(target)) or 1.0
    ranks = (walked.vectors @ target) / norm
    out = [Candidate(c.chunk_id, c.document_id, c.score, rank_score=float(r)) for c, r in zip(walked.found, ranks, strict=True)]
    return sorted(out, key=lambda c: -c.fusing)


class SearchStore:
    """``reads``: a pool from ``db.open_read_pool`` for a search's statements (one round trip each); without it they
    run on ``pool``."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, reads: AsyncConnectionPool | None = None) -> None:
        self.pool, self.settings, self.reads = pool, settings, reads

    async def _read(self, sql: str, params: Any = None, *, binary: bool = False, row_factory: Any = None) -> list[Any]:
        if self.reads is not None:
            return await db.read(self.reads, sql, params, binary=binary, row_factory=row_factory)
        async with self.pool.connection() as conn:
            return await db.fetch(conn, sql, params, binary=binary, row_factory=row_factory)

    async def generation(self) -> int:
        """The index generation as ingest last committed it (at start, and when the event stream may have gaps)."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT generation FROM index_state")).fetchone()
        return int(row[0]) if row else 0

    #: the BM25 query builder (bench/previous_search.py puts the previous one here for its same-run baseline)
    lexical_sql = staticmethod(lexical_sql)

    async def lexical(self, terms: dict[str, int], filters: common_pb2.Filters, limit: int, explain: bool = False) -> list[Candidate]:
        sql, params = self.lexical_sql(self.settings, terms, filters, limit, explain)
        rows = await self._read(sql, params)
        return [Candidate(r[0], r[1], float(r[2]), tuple(zip(r[3], r[4], strict=True)) if explain else ()) for r in rows]

    async def vector(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> list[Candidate]:
        """The ``limit`` nearest chunks by cosine, one HNSW walk (its breadth and iterative scan are the pooled
        connection's session settings, see ``db.open_pool``)."""
        sql, params = vector_sql(vec, filters, limit)
        rows = await self._read(sql, params)
        out = [Candidate(r[0], r[1], float(r[2])) for r in rows]
        return sorted(out, key=lambda c: -c.score)  # relaxed order: restore it

    async def walk(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> Walked:
        """``vector``'s walk, with the chunks' embeddings (binary rows: no text parsing of hundreds of vectors)."""
        sql, params = vector_sql(vec, filters, limit, with_vectors=True)
        return Walked.of(await self._read(sql, params, binary=True), len(vec))

    async def feedback(self, vec: np.ndarray, documents: list[str], weight: float, walked: Walked) -> list[Candidate]:
        """Pseudo-relevance feedback without a second HNSW walk: the chunks the query's walk found, re-ranked by their
        cosine to the query + ``weight`` × the mean chunk vector of ``documents`` (``moved_ranking``). One small read
        (that mean); unchanged when the documents have no vectors."""
        if not walked.found or not documents:
            return walked.found
        rows = await self._read("SELECT avg(embedding) FROM chunk_vectors WHERE document_id = ANY(%s)",
                                ([uuid.UUID(d) for d in documents],), binary=True)
        row = rows[0] if rows else None
        if not row or row[0] is None:
            return walked.found
        return moved_ranking(vec, np.asarray(row[0].to_numpy(), dtype=np.float32), weight, walked)

    async def details(self, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """What a hit shows of each chunk: its text and place, and its document's title, path, project, type and tags."""
        rows = await self._read(
            "SELECT c.id, c.document_id, c.text, c.heading_path, c.line_start, c.line_end, c.char_start, c.char_end,"
            " d.title, d.path, d.project, d.type, d.tags, d.kind, d.summary, d.auto_tags, d.entities, d.enrich_state, d.enrich_reason,"
            " d.updated_at FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE c.id = ANY(%s)", ([uuid.UUID(i) for i in chunk_ids],), row_factory=dict_row)
        return {str(r["id"]): r for r in rows}

    async def updated_at(self, document_ids: list[str]) -> dict[str, dt.datetime]:
        rows = await self._read("SELECT id, updated_at FROM documents WHERE id = ANY(%s::uuid[])", (document_ids,))
        return {str(i): t for i, t in rows}

    async def related(self, *, document_id: uuid.UUID | None = None, path: str = "", min_score: float = 0.0,
                      limit: int = 10) -> list[tuple[str, str, str, float]] | None:
        """(id, title, path, score) of the documents linked to one, best first; None when the document does not exist."""
        key, value = ("id", document_id) if document_id is not None else ("path", path)
        async with self.pool.connection() as conn:
            doc = await (await conn.execute(f"SELECT id FROM documents WHERE {key} = %s LIMIT 1", (value,))).fetchone()
            if doc is None:
                return None
            rows = await (await conn.execute(
                "SELECT d.id, d.title, d.path, l.score FROM links l JOIN documents d ON d.id = l.target_id"
                " WHERE l.source_id = %s AND l.score >= %s ORDER BY l.score DESC LIMIT %s", (doc[0], min_score, limit))).fetchall()
        return [(str(i), str(t), str(p), float(s)) for i, t, p, s in rows]

    # -- the weekly review ------------------------------------------------------------------------------------------
    async def claim(self, key: str) -> bool:
        """Take a scheduled run's key; False when another instance wrote that review already."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("INSERT INTO reviews (key) VALUES (%s) ON CONFLICT (key) DO NOTHING RETURNING key", (key,))).fetchone()
        return row is not None

    async def review_data(self, since: dt.datetime, project: str, stale_days: int) -> ReviewData:
        """What the review of the window from ``since`` shows (review.render_review draws it)."""
        args = {"p": project, "since": since, "days": stale_days, "floor": NEAR_DUPLICATE, "n": REVIEW_ROWS}
        in_project = "(%(p)s = '' OR d.project = %(p)s) AND d.type <> 'review'"
        async with self.pool.connection() as conn:
            new = await fetch_dicts(conn,
                "SELECT d.id, d.title, d.path, d.kind, dc.cluster_id, c.name AS cluster FROM documents d"
                " LEFT JOIN document_clusters dc ON dc.document_id = d.id LEFT JOIN clusters c ON c.id = dc.cluster_id"
                f" WHERE {in_project} AND d.created_at >= %(since)s ORDER BY c.name NULLS LAST, d.created_at", args)
            links = await fetch_dicts(conn,
                "SELECT a.title AS a, a.path AS a_path, b.title AS b, b.path AS b_path, l.score FROM links l"
                " JOIN documents a ON a.id = l.source_id JOIN documents b ON b.id = l.target_id"
                " WHERE l.created_at >= %(since)s AND l.source_id < l.target_id AND (%(p)s = '' OR a.project = %(p)s)"
                " AND a.type <> 'review' AND b.type <> 'review' ORDER BY l.score DESC LIMIT %(n)s", args)
            clusters = await fetch_dicts(conn,
                "SELECT c.id, c.name, count(*) AS size, count(*) FILTER (WHERE d.created_at >= %(since)s) AS fresh FROM clusters c"
                " JOIN document_clusters dc ON dc.cluster_id = c.id JOIN documents d ON d.id = dc.document_id"
                " WHERE (%(p)s = '' OR c.project = %(p)s) GROUP BY c.id, c.name", args)
            stale_clusters = await fetch_dicts(conn,
                f"SELECT c.name, count(*) AS size, count(*) FILTER (WHERE {STALE}) AS stale FROM clusters c"
                " JOIN document_clusters dc ON dc.cluster_id = c.id JOIN documents d ON d.id = dc.document_id"
                " WHERE (%(p)s = '' OR c.project = %(p)s) GROUP BY c.id, c.name HAVING"
                f" count(*) FILTER (WHERE {STALE}) * 5 >= count(*) * 4 ORDER BY count(*) DESC LIMIT %(n)s", args)
            stale_notes = await fetch_dicts(conn,
                f"SELECT d.title, d.path, d.updated_at FROM documents d WHERE {in_project} AND {STALE}"
                " ORDER BY d.updated_at LIMIT %(n)s", args)
            stale_total = await (await conn.execute(f"SELECT count(*) FROM documents d WHERE {in_project} AND {STALE}", args)).fetchone()
            dups = await fetch_dicts(conn,
                "SELECT a.title AS a, a.path AS a_path, b.title AS b, b.path AS b_path, l.score FROM links l"
                " JOIN documents a ON a.id = l.source_id JOIN documents b ON b.id = l.target_id"
                " WHERE l.score >= %(floor)s AND l.source_id < l.target_id AND (%(p)s = '' OR a.project = %(p)s)"
                " AND a.type <> 'review' AND b.type <> 'review' ORDER BY l.score DESC LIMIT %(n)s", args)
            gaps = await fetch_dicts(conn,
                "SELECT lower(query) AS q, min(query) AS query, max(top_score) AS best, bool_or(kind = 'question') AS asked,"
                " CASE WHEN bool_or(kind = 'question') THEN count(*) FILTER (WHERE kind = 'question') ELSE count(*) END AS times"
                " FROM query_log WHERE at >= %(since)s AND NOT answered AND (%(p)s = '' OR project = %(p)s) GROUP BY 1"
                " HAVING NOT bool_or(answered) ORDER BY count(*) DESC, max(at) DESC LIMIT %(n)s", args)
            closest = await fetch_dicts(conn,
                "SELECT a.name AS a, b.name AS b, 1 - (a.centroid <=> b.centroid) AS sim FROM clusters a JOIN clusters b"
                " ON a.project = b.project AND a.id < b.id WHERE (%(p)s = '' OR a.project = %(p)s) ORDER BY a.centroid <=> b.centroid LIMIT 1", args)
        return ReviewData(new, links, clusters, stale_clusters, stale_notes, int(stale_total[0]) if stale_total else 0, dups, gaps, closest)
