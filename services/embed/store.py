"""Embed's SQL. Embed owns the vectors (chunk_vectors, keyed by chunk and model), its queue bookkeeping
(embed_queue) and the links between related documents; it reads ingest's chunks and documents."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from shared.runtime.db import VECTOR_SESSION

_MISSING = "NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id AND v.model_id = %(model)s)"


class EmbedStore:
    def __init__(self, pool: AsyncConnectionPool, model_id: str) -> None:
        self.pool, self.model_id = pool, model_id

    async def pending(self, doc_ids: Sequence[uuid.UUID]) -> list[tuple[Any, str, str, uuid.UUID]]:
        """(chunk id, context, text, document id) of the documents' chunks without a vector, in document order."""
        async with self.pool.connection() as conn:
            return await (await conn.execute(
                f"SELECT c.id, c.context, c.text, c.document_id FROM chunks c WHERE c.document_id = ANY(%(docs)s) AND {_MISSING}"
                " ORDER BY c.document_id, c.ord", {"docs": list(doc_ids), "model": self.model_id})).fetchall()

    async def touch(self, doc_ids: Sequence[uuid.UUID]) -> None:
        """The documents are queued again: the sweep's clock for their waiting chunks restarts."""
        async with self.pool.connection() as conn:
            await conn.execute("INSERT INTO embed_queue (document_id) SELECT id FROM documents WHERE id = ANY(%s)"
                               " ON CONFLICT (document_id) DO UPDATE SET queued_at = now()", (list(doc_ids),))

    async def write_vectors(self, rows: Sequence[tuple[Any, Any]]) -> None:
        """(chunk id, vector) pairs; a chunk that already has a vector keeps it (a redelivered batch changes nothing),
        and a chunk deleted meanwhile gets none. A vector its document already has in the HNSW graph (the same text
        repeated) is stored outside the graph, as that one's twin (migration 0011)."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO chunk_vectors (chunk_id, model_id, document_id, project, embedding, indexed)"
                " SELECT c.id, %(m)s, c.document_id, c.project, %(v)s, NOT EXISTS (SELECT 1 FROM chunk_vectors o"
                "  WHERE o.document_id = c.document_id AND o.digest = decode(md5(vector_send(%(v)s)), 'hex')"
                "  AND o.model_id = %(m)s AND o.indexed)"
                " FROM chunks c WHERE c.id = %(c)s ON CONFLICT DO NOTHING",
                [{"m": self.model_id, "v": v, "c": cid} for cid, v in rows])

    async def finish(self, doc_ids: Sequence[uuid.UUID], related_threshold: float) -> list[uuid.UUID]:
        """The documents not yet marked embedded whose every chunk now has a vector; their links are renewed."""
        async with self.pool.connection() as conn, conn.transaction():
            done = [r[0] for r in await (await conn.execute(
                "SELECT d.id FROM documents d WHERE d.id = ANY(%(docs)s) AND NOT d.embedded AND NOT EXISTS"
                f" (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND {_MISSING})",
                {"docs": list(doc_ids), "model": self.model_id})).fetchall()]
            for doc_id in done:
                await link_related(conn, doc_id, self.model_id, related_threshold)
            if done:
                await conn.execute("DELETE FROM embed_queue WHERE document_id = ANY(%s)", (done,))
        return done

    async def requeue_stale(self, age_s: float) -> list[uuid.UUID]:
        """Documents with chunks still without a vector ``age_s`` after they were stored or last queued (their queue
        message was lost); their clock restarts."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (await conn.execute(
                "SELECT d.id FROM documents d LEFT JOIN embed_queue q ON q.document_id = d.id WHERE NOT d.embedded"
                " AND coalesce(q.queued_at, d.updated_at) < now() - make_interval(secs => %(age)s)"
                f" AND EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND {_MISSING}) LIMIT 500",
                {"age": age_s, "model": self.model_id})).fetchall()
            stale = [r[0] for r in rows]
            if stale:
                await conn.execute("INSERT INTO embed_queue (document_id) SELECT unnest(%s::uuid[])"
                                   " ON CONFLICT (document_id) DO UPDATE SET queued_at = now()", (stale,))
        return stale

    async def other_model(self) -> str:
        """A model id other than this one that stored vectors were made with, or ''."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT model_id FROM chunk_vectors WHERE model_id <> %s LIMIT 1",
                                            (self.model_id,))).fetchone()
        return str(row[0]) if row else ""


async def link_related(conn: Any, doc_id: uuid.UUID, model_id: str, threshold: float) -> int:
    """Replace a document's links: other documents of its project whose best chunk pair is at least `threshold` similar."""
    await conn.execute(VECTOR_SESSION)  # HNSW with iterative scans, also under the project filter
    rows = await (await conn.execute(
        "SELECT n.document_id, max(n.sim) FROM chunk_vectors m CROSS JOIN LATERAL ("
        "  SELECT v.document_id, 1 - (v.embedding <=> m.embedding) AS sim FROM chunk_vectors v"
        "  WHERE v.indexed AND v.project = m.project AND v.document_id <> m.document_id AND v.model_id = m.model_id"
        "  ORDER BY v.embedding <=> m.embedding LIMIT 20) n"
        " WHERE m.document_id = %s AND m.model_id = %s AND m.indexed GROUP BY n.document_id HAVING max(n.sim) >= %s",
        (doc_id, model_id, threshold))).fetchall()
    # Links that still hold keep their created_at (the weekly review's "new links"); the others go.
    keep = [other for other, _ in rows]
    await conn.execute("DELETE FROM links WHERE (source_id = %s AND NOT target_id = ANY(%s)) OR (target_id = %s AND NOT source_id = ANY(%s))",
                       (doc_id, keep, doc_id, keep))
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO links (source_id, target_id, score) VALUES (%s,%s,%s), (%s,%s,%s)"
                              " ON CONFLICT (source_id, target_id) DO UPDATE SET score = excluded.score",
                              [(doc_id, other, s, other, doc_id, s) for other, s in rows])
    return len(rows)
