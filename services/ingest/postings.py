"""Ingest's SQL for the lexical index it owns: postings, term and corpus statistics, and their upkeep.

A chunk's postings are its field-weighted term counts (tf, with the chunk length dl) and an
impact (the BM25 weight without idf) that orders each term's postings for search's bounded
candidate read. Scores never depend on impacts: search recomputes BM25 from tf, dl and the
live statistics.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.ingest.generation import bump_generation
from shared.runtime import analyzer

ADD_LEXICAL_STATS = (
    "INSERT INTO lexical_stats (project, shard, chunks, terms) VALUES (%s, abs(hashtext(%s::text)) %% 16, %s, %s)"
    " ON CONFLICT (project, shard) DO UPDATE SET chunks = lexical_stats.chunks + excluded.chunks,"
    " terms = lexical_stats.terms + excluded.terms")

_INSERT_POSTINGS = (
    "INSERT INTO postings (term, project, chunk_id, document_id, tf, dl, impact)"
    " SELECT t, %(project)s, c, %(doc)s, tf, dl, tf * (%(k1)s + 1) / (tf + %(k1)s * (1 - %(b)s + %(b)s * dl / %(avgdl)s))"
    " FROM unnest(%(terms)s::text[], %(chunks)s::uuid[], %(tf)s::real[], %(dl)s::real[]) AS u(t, c, tf, dl)"
    " ORDER BY t")
#: the avgdl impacts are computed with: the project's re-weighting point, else the live mean, else this
_DEFAULT_AVGDL = 100.0


@dataclass(frozen=True)
class LexicalParams:
    """How chunks become postings: the context (title and headings) field's weight and BM25's k1 and b for impacts."""

    title_weight: float = 1.0
    k1: float = 0.9
    b: float = 0.4


@dataclass
class Postings:
    """A document's postings, column-wise, and each chunk's length."""

    terms: list[str] = field(default_factory=list)
    chunks: list[uuid.UUID] = field(default_factory=list)
    tf: list[float] = field(default_factory=list)
    dl: list[float] = field(default_factory=list)
    lengths: list[float] = field(default_factory=list)


def chunk_postings(chunk_ids: Sequence[uuid.UUID], contexts: Sequence[str], texts: Sequence[str], title_weight: float) -> Postings:
    """Field-weighted term counts per chunk: tf = count in text + title_weight × count in context."""
    out = Postings()
    for cid, ctx, text in zip(chunk_ids, contexts, texts, strict=True):
        tf: dict[str, float] = {t: float(n) for t, n in analyzer.term_counts(text)[0].items()}
        if title_weight:
            for term, count in analyzer.term_counts(ctx)[0].items():
                tf[term] = tf.get(term, 0.0) + title_weight * count
        length = float(sum(tf.values()))
        out.lengths.append(length)
        for term, weight in tf.items():
            out.terms.append(term)
            out.chunks.append(cid)
            out.tf.append(weight)
            out.dl.append(length)
    return out


async def write_postings(conn: Any, project: str, doc_id: uuid.UUID, p: Postings, params: LexicalParams) -> None:
    """Insert a document's postings in one statement (one trigger run, terms locked in order)."""
    if not p.terms:
        return
    row = await (await conn.execute(
        "SELECT coalesce((SELECT avgdl FROM lexical_weights WHERE project = %(p)s),"
        " (SELECT sum(terms) / nullif(sum(chunks), 0) FROM lexical_stats WHERE project = %(p)s))", {"p": project})).fetchone()
    avgdl = float(row[0]) if row and row[0] else _DEFAULT_AVGDL
    await conn.execute("INSERT INTO lexical_weights (project, avgdl) VALUES (%s, %s) ON CONFLICT DO NOTHING", (project, avgdl))
    await conn.execute(_INSERT_POSTINGS, {"project": project, "doc": doc_id, "k1": params.k1, "b": params.b, "avgdl": avgdl,
                                          "terms": p.terms, "chunks": p.chunks, "tf": p.tf, "dl": p.dl})


async def delete_postings(conn: Any, doc_ids: Sequence[uuid.UUID]) -> None:
    """Remove the documents' postings in one statement before their chunks go (one trigger run, terms locked in order)."""
    await conn.execute("DELETE FROM postings WHERE chunk_id IN (SELECT id FROM chunks WHERE document_id = ANY(%s))", (list(doc_ids),))



class PostingsStore:
    """The lexical index's upkeep: postings for chunks written before the table existed, and impacts kept near the
    live mean chunk length."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def backfill_postings(self, lexical: LexicalParams, batch: int = 64) -> int:
        """Index the chunks written before the postings table existed (lex_len IS NULL), a batch of documents at a time."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (await conn.execute(
                "SELECT c.id, c.document_id, c.project, c.context, c.text FROM chunks c WHERE c.document_id IN"
                " (SELECT document_id FROM chunks WHERE lex_len IS NULL LIMIT %s) AND c.lex_len IS NULL ORDER BY c.document_id, c.ord"
                " FOR UPDATE SKIP LOCKED", (batch,))).fetchall()
            by_doc: dict[tuple[uuid.UUID, str], list[tuple[Any, ...]]] = {}
            for r in rows:
                by_doc.setdefault((r[1], r[2]), []).append(r)
            for (doc_id, project), rs in by_doc.items():
                p = chunk_postings([r[0] for r in rs], [r[3] for r in rs], [r[4] for r in rs], lexical.title_weight)
                await conn.execute("UPDATE chunks SET lex_len = u.len FROM unnest(%s::uuid[], %s::real[]) AS u(id, len)"
                                   " WHERE chunks.id = u.id", ([r[0] for r in rs], p.lengths))
                await conn.execute(ADD_LEXICAL_STATS, (project, doc_id, len(rs), sum(p.lengths)))
                await write_postings(conn, project, doc_id, p, lexical)
            if by_doc:
                await bump_generation(conn)
        return len(by_doc)

    async def weight_drift(self) -> list[tuple[str, float]]:
        """(project, relative change of its mean chunk length since its impacts were computed) for every project."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT w.project, sum(s.terms) / nullif(sum(s.chunks), 0) / w.avgdl - 1 FROM lexical_weights w"
                " JOIN lexical_stats s USING (project) GROUP BY w.project, w.avgdl")).fetchall()
        return [(str(p), float(d)) for p, d in rows if d is not None]

    async def reweight(self, project: str, lexical: LexicalParams, batch: int = 500) -> int:
        """Recompute a project's impacts with its live mean chunk length, a batch of chunks per transaction.

        Scores never depend on impacts (search recomputes BM25 from tf, dl and the live
        statistics); impacts only order each term's postings for the bounded candidate read.
        """
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT sum(terms) / nullif(sum(chunks), 0) FROM lexical_stats WHERE project = %s",
                                            (project,))).fetchone()
            if not row or not row[0]:
                return 0
            avgdl, done, after = float(row[0]), 0, uuid.UUID(int=0)
            while True:
                async with conn.transaction():
                    ids = [r[0] for r in await (await conn.execute(
                        "SELECT id FROM chunks WHERE project = %s AND id > %s ORDER BY id LIMIT %s", (project, after, batch))).fetchall()]
                    if not ids:
                        break
                    cur = await conn.execute(
                        # Rows a writer holds (a document being replaced or deleted) are skipped, never waited for: the
                        # re-weighting cannot be one side of a deadlock, and those rows are on their way out anyway.
                        "UPDATE postings p SET impact = p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / %(avgdl)s))"
                        " FROM (SELECT ctid FROM postings WHERE chunk_id = ANY(%(ids)s) FOR UPDATE SKIP LOCKED) AS free"
                        " WHERE p.ctid = free.ctid", {"k1": lexical.k1, "b": lexical.b, "avgdl": avgdl, "ids": ids})
                    done += cur.rowcount
                    after = ids[-1]
            await conn.execute("UPDATE lexical_weights SET avgdl = %s WHERE project = %s", (avgdl, project))
        return done

