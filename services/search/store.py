"""Search's SQL: BM25 over the chunks' tsvectors, pgvector HNSW, corpus statistics, hit details and links.

The query builders are pure (tested for their SQL and parameters); SearchStore
runs them on the pool.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import numpy as np
from psycopg_pool import AsyncConnectionPool

from services.search.fusion import Candidate
from shared.gen.tessera.v1 import common_pb2
from shared.runtime.config import Settings
from shared.runtime.db import VECTOR_SESSION, fetch_dicts


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
    params.update(lex=lexemes, idf=[bm25_idf(n, df.get(lx, 0)) for lx in lexemes], k1=settings.search.bm25_k1, b=settings.search.bm25_b, avgdl=avgdl)
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


class SearchStore:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool, self.settings = pool, settings

    async def generation(self) -> int:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT generation FROM index_state")).fetchone()
        return int(row[0]) if row else 0

    async def lexemes(self, query: str) -> list[str]:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (query,))).fetchone()
        return list(row[0]) if row else []

    async def corpus_size(self, project: str) -> tuple[int, float]:
        """(chunks, their average length in lexemes) in the project, or everywhere for ''."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT count(*), coalesce(avg(doc_len), 0) FROM chunks WHERE %s = '' OR project = %s",
                                            (project, project))).fetchone()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    async def document_frequencies(self, project: str, lexemes: list[str]) -> dict[str, int]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT l, (SELECT count(*) FROM chunks c WHERE c.tsv @@ quote_literal(l)::tsquery AND (%(p)s = '' OR c.project = %(p)s))"
                " FROM unnest(%(lex)s::text[]) AS l", {"p": project, "lex": lexemes})).fetchall()
        return {lx: int(cnt) for lx, cnt in rows}

    async def lexical(self, lexemes: list[str], filters: common_pb2.Filters, limit: int,
                      stats: tuple[int, float, dict[str, int]] | None) -> list[Candidate]:
        sql, params = lexical_sql(self.settings, lexemes, filters, limit, stats)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(sql, params)).fetchall()
        return [Candidate(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    async def vector(self, vec: np.ndarray, filters: common_pb2.Filters, limit: int) -> list[Candidate]:
        sql, params = vector_sql(vec, filters, limit)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(VECTOR_SESSION)
            rows = await (await conn.execute(sql, params)).fetchall()
        out = [Candidate(str(r[0]), str(r[1]), float(r[2])) for r in rows]
        return sorted(out, key=lambda c: -c.score)  # relaxed order: restore it

    async def details(self, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """What a hit shows of each chunk: its text and place, and its document's title, path, project, type and tags."""
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(conn,
                "SELECT c.id, c.document_id, c.text, c.heading_path, c.line_start, c.line_end, c.char_start, c.char_end,"
                " d.title, d.path, d.project, d.type, d.tags FROM chunks c JOIN documents d ON d.id = c.document_id"
                " WHERE c.id = ANY(%s)", ([uuid.UUID(i) for i in chunk_ids],))
        return {str(r["id"]): r for r in rows}

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
