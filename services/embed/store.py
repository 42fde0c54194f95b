"""Embed's SQL: chunks waiting for vectors, writing them, marking documents embedded, links between documents,
and re-queueing chunks whose queue message was lost.

Embed also moves ingest's per-file state from 'chunked' to 'embedded' (ingest_files):
that state is what `tessera ingest` waits on, and only embed knows when it is reached.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from shared.contracts import bump_generation
from shared.runtime.db import VECTOR_SESSION


class EmbedStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def pending(self, doc_ids: Sequence[uuid.UUID]) -> list[tuple[Any, str, str, uuid.UUID]]:
        """(chunk id, context, text, document id) of the documents' chunks without a vector, in document order."""
        async with self.pool.connection() as conn:
            return await (await conn.execute(
                "SELECT id, context, text, document_id FROM chunks WHERE document_id = ANY(%s) AND embedding IS NULL"
                " ORDER BY document_id, ord", (list(doc_ids),))).fetchall()

    async def touch(self, doc_ids: Sequence[uuid.UUID]) -> None:
        """The documents are queued again: the sweep's clock for their waiting chunks restarts."""
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE chunks SET queued_at = now() WHERE document_id = ANY(%s) AND embedding IS NULL", (list(doc_ids),))

    async def write_vectors(self, rows: Sequence[tuple[Any, Any]], model_id: str) -> None:
        """(chunk id, vector) pairs; a chunk that already has a vector keeps it (a redelivered batch changes nothing)."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany("UPDATE chunks SET embedding = %s, model_id = %s WHERE id = %s AND embedding IS NULL",
                                  [(v, model_id, cid) for cid, v in rows])

    async def finish(self, doc_ids: Sequence[uuid.UUID], changed: bool, related_threshold: float) -> tuple[int, list[uuid.UUID]]:
        """Mark embedded the documents whose every chunk has a vector (their files too) and link them; (the new
        generation when anything changed, else 0; the documents now waiting for enrichment)."""
        async with self.pool.connection() as conn, conn.transaction():
            done = [r[0] for r in await (await conn.execute(
                "UPDATE documents d SET embedded = true WHERE d.id = ANY(%s) AND NOT d.embedded AND NOT EXISTS"
                " (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND c.embedding IS NULL) RETURNING d.id", (list(doc_ids),))).fetchall()]
            if done:
                await conn.execute("UPDATE ingest_files SET state = 'embedded', updated_at = now()"
                                   " WHERE document_id = ANY(%s) AND state = 'chunked'", (done,))
                for doc_id in done:
                    await link_related(conn, doc_id, related_threshold)
            generation = await bump_generation(conn) if changed or done else 0
            enrich = [r[0] for r in await (await conn.execute(
                "SELECT id FROM documents WHERE id = ANY(%s) AND enrich_state = 'pending'", (done,))).fetchall()] if done else []
            return generation, enrich

    async def requeue_stale(self, age_s: float) -> list[uuid.UUID]:
        """Documents with chunks still without a vector after ``age_s`` (their queue message was lost); their clock restarts."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "WITH u AS (UPDATE chunks SET queued_at = now() WHERE embedding IS NULL"
                " AND queued_at < now() - make_interval(secs => %s) RETURNING document_id)"
                " SELECT DISTINCT document_id FROM u", (age_s,))).fetchall()
        return [r[0] for r in rows]

    async def other_model(self, model_id: str) -> str:
        """A model id other than ``model_id`` that stored vectors were made with, or ''."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT model_id FROM chunks WHERE model_id IS NOT NULL AND model_id <> %s LIMIT 1",
                                            (model_id,))).fetchone()
        return str(row[0]) if row else ""


async def link_related(conn: Any, doc_id: uuid.UUID, threshold: float) -> int:
    """Replace a document's links: other documents of its project whose best chunk pair is at least `threshold` similar."""
    await conn.execute(VECTOR_SESSION)  # HNSW with iterative scans, also under the project filter
    rows = await (await conn.execute(
        "SELECT n.document_id, max(n.sim) FROM chunks m CROSS JOIN LATERAL ("
        "  SELECT c.document_id, 1 - (c.embedding <=> m.embedding) AS sim FROM chunks c"
        "  WHERE c.project = m.project AND c.document_id <> m.document_id AND c.embedding IS NOT NULL"
        "  ORDER BY c.embedding <=> m.embedding LIMIT 20) n"
        " WHERE m.document_id = %s GROUP BY n.document_id HAVING max(n.sim) >= %s", (doc_id, threshold))).fetchall()
    # Links that still hold keep their created_at (the weekly review's "new links"); the others go.
    keep = [other for other, _ in rows]
    await conn.execute("DELETE FROM links WHERE (source_id = %s AND NOT target_id = ANY(%s)) OR (target_id = %s AND NOT source_id = ANY(%s))",
                       (doc_id, keep, doc_id, keep))
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO links (source_id, target_id, score) VALUES (%s,%s,%s), (%s,%s,%s)"
                              " ON CONFLICT (source_id, target_id) DO UPDATE SET score = excluded.score",
                              [(doc_id, other, s, other, doc_id, s) for other, s in rows])
    return len(rows)
