"""The reads of the near-duplicate checks (services/ingest/dedup.py's candidates and their text), and the lock that
makes a capture's check and write one step. Ingest owns every table read here."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from psycopg_pool import AsyncConnectionPool

from shared.runtime.db import VECTOR_SESSION


class DedupStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def dedup_lock(self, project: str) -> AsyncIterator[None]:
        """Captures of one project check for duplicates and store one at a time (a session advisory lock)."""
        async with self.pool.connection() as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtext('tessera-dedup:' || %s))", (project,))
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext('tessera-dedup:' || %s))", (project,))

    async def same_body(self, project: str, body_hash: str, exclude: uuid.UUID) -> uuid.UUID | None:
        """The oldest twin: created_at comes from frontmatter to the second, so two twins captured in one second are
        told apart by when each was stored."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT id FROM documents WHERE project = %s AND body_hash = %s AND id <> %s"
                                            " AND type <> 'review' ORDER BY created_at, updated_at, id LIMIT 1", (project, body_hash, exclude))).fetchone()
        return row[0] if row else None

    async def nearest_chunks(self, project: str, vectors: Sequence[Any], exclude: uuid.UUID, per_vector: int = 3) -> list[tuple[uuid.UUID, int]]:
        """The stored chunks nearest each of ``vectors`` in the project (``per_vector`` each), as (document, ordinal):
        the candidates a capture is compared with."""
        found: list[tuple[uuid.UUID, int]] = []
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(VECTOR_SESSION)
            for vec in vectors:
                rows = await (await conn.execute(
                    "SELECT v.document_id, c.ord FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id WHERE v.project = %(p)s"
                    " AND v.indexed AND v.document_id <> %(x)s AND EXISTS (SELECT 1 FROM documents d WHERE d.id = v.document_id AND d.type <> 'review')"
                    " ORDER BY v.embedding <=> %(v)s LIMIT %(k)s", {"v": vec, "p": project, "x": exclude, "k": per_vector})).fetchall()
                found += [(r[0], int(r[1])) for r in rows]
        return found

    async def sharing_bands(self, project: str, bands: Sequence[int], exclude: uuid.UUID, limit: int = 8) -> list[uuid.UUID]:
        """Documents of the project that share a MinHash band with ``bands``, those sharing most first."""
        if not bands:
            return []
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT id FROM documents WHERE shingle_bands && %(b)s::bigint[] AND project = %(p)s AND id <> %(x)s AND type <> 'review'"
                " ORDER BY cardinality(ARRAY(SELECT unnest(shingle_bands) INTERSECT SELECT unnest(%(b)s::bigint[]))) DESC, id LIMIT %(n)s",
                {"b": list(bands), "p": project, "x": exclude, "n": limit})).fetchall()
        return [r[0] for r in rows]

    async def chunk_texts(self, spans: Mapping[uuid.UUID, tuple[int, int]]) -> dict[uuid.UUID, list[str]]:
        """Each document's chunk texts with ordinals in [first, last]."""
        out: dict[uuid.UUID, list[str]] = {d: [] for d in spans}
        if not spans:
            return out
        ids = list(spans)
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT c.document_id, c.text FROM chunks c JOIN unnest(%s::uuid[], %s::int[], %s::int[]) AS s(d, lo, hi)"
                " ON c.document_id = s.d AND c.ord BETWEEN s.lo AND s.hi ORDER BY c.document_id, c.ord",
                (ids, [spans[d][0] for d in ids], [spans[d][1] for d in ids]))).fetchall()
        for doc_id, text in rows:
            out[doc_id].append(text)
        return out
