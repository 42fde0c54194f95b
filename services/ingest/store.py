"""Ingest's SQL: documents and their chunks, ingest jobs and the state of each of their files.

Every write that changes what search can find also advances the index
generation in the same transaction (shared.contracts.bump_generation), and
returns it so that the caller can announce it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.ingest.chunk import Chunk
from shared.contracts import bump_generation
from shared.runtime.db import fetch_dicts

_FILE_STATE = (
    "INSERT INTO ingest_files (job_id, path, document_id, state, reason, chunks, content_hash, warnings)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (job_id, path) DO UPDATE SET document_id=excluded.document_id,"
    " state=excluded.state, reason=excluded.reason, chunks=excluded.chunks, content_hash=excluded.content_hash,"
    " warnings=excluded.warnings, updated_at=now()")
_UPSERT_DOCUMENT = (
    "INSERT INTO documents (id, project, path, title, type, tags, media_type, content_hash, warnings, created_at,"
    " updated_at, root, size_bytes, embedded) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,coalesce(%s, now()),now(),%s,%s,false)"
    " ON CONFLICT (id) DO UPDATE SET title=excluded.title, type=excluded.type, tags=excluded.tags,"
    " media_type=excluded.media_type, content_hash=excluded.content_hash, warnings=excluded.warnings,"
    " created_at=coalesce(%s, documents.created_at), updated_at=now(), root=excluded.root,"
    " size_bytes=excluded.size_bytes, embedded=false")
_INSERT_CHUNK = (
    "INSERT INTO chunks (id, document_id, ord, text, heading_path, char_start, char_end, line_start, line_end,"
    " project, context) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")


@dataclass
class FileState:
    """One row of ingest_files: what happened to a file of a job."""

    path: str
    state: str
    reason: str = ""
    document_id: uuid.UUID | None = None
    chunks: int = 0
    content_hash: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class NewDocument:
    """A parsed document and its chunks, as ingest stores them."""

    id: uuid.UUID
    project: str
    path: str
    title: str
    type: str
    tags: list[str]
    media_type: str
    content_hash: str
    warnings: list[str]
    created: dt.datetime | None
    root: str
    size_bytes: int
    chunks: Sequence[Chunk]


class IngestStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def content_hash(self, doc_id: uuid.UUID) -> str | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT content_hash FROM documents WHERE id = %s", (doc_id,))).fetchone()
        return str(row[0]) if row else None

    async def file_state(self, job_id: uuid.UUID, f: FileState, conn: Any = None) -> None:
        args = (job_id, f.path, f.document_id, f.state, f.reason, f.chunks, f.content_hash, f.warnings)
        if conn is not None:
            await conn.execute(_FILE_STATE, args)
            return
        async with self.pool.connection() as c:
            await c.execute(_FILE_STATE, args)

    async def replace_document(self, job_id: uuid.UUID, doc: NewDocument) -> int:
        """Store the document with its new chunks (the old ones go), mark its file 'chunked'; the new generation."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(_UPSERT_DOCUMENT, (doc.id, doc.project, doc.path, doc.title, doc.type, doc.tags, doc.media_type,
                                                  doc.content_hash, doc.warnings, doc.created, doc.root, doc.size_bytes, doc.created))
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (doc.id,))
            async with conn.cursor() as cur:
                await cur.executemany(_INSERT_CHUNK, [
                    (uuid.uuid4(), doc.id, c.ord, c.text, list(c.heading_path), c.char_start, c.char_end, c.line_start,
                     c.line_end, doc.project, " / ".join([doc.title, *[h for h in c.heading_path if h != doc.title]]))
                    for c in doc.chunks])
            generation = await bump_generation(conn)
            await self.file_state(job_id, FileState(doc.path, "chunked", "", doc.id, len(doc.chunks), doc.content_hash,
                                                    doc.warnings), conn=conn)
        return generation

    async def new_job(self, root: str, project: str, files: list[str]) -> uuid.UUID:
        job_id = uuid.uuid4()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO ingest_jobs (id, root, project, total_files) VALUES (%s,%s,%s,%s)",
                               (job_id, root, project, len(files)))
            async with conn.cursor() as cur:
                await cur.executemany("INSERT INTO ingest_files (job_id, path, state) VALUES (%s,%s,'queued')",
                                      [(job_id, f) for f in files])
        return job_id

    async def finish_job(self, job_id: uuid.UUID) -> None:
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE ingest_jobs SET finished_at = now() WHERE id = %s", (job_id,))

    async def remove_missing(self, job_id: uuid.UUID, root: str, project: str, seen: set[str]) -> tuple[int, int]:
        """Delete the documents of ``root`` (and ``project``) whose file was not seen; (how many, new generation or 0)."""
        async with self.pool.connection() as conn, conn.transaction():
            rows = await (await conn.execute(
                "SELECT id, path FROM documents WHERE root = %s AND (%s = '' OR project = %s)", (root, project, project))).fetchall()
            gone = [(doc_id, path) for doc_id, path in rows if path not in seen]
            if not gone:
                return 0, 0
            await conn.execute("DELETE FROM documents WHERE id = ANY(%s)", ([d for d, _ in gone],))
            generation = await bump_generation(conn)
            for doc_id, path in gone:
                await self.file_state(job_id, FileState(path, "deleted", "the file is gone", doc_id), conn=conn)
        return len(gone), generation

    async def job(self, job_id: uuid.UUID) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The job's row and its files' rows (with ``embedded_chunks``), or None."""
        async with self.pool.connection() as conn:
            jobs = await fetch_dicts(conn, "SELECT * FROM ingest_jobs WHERE id = %s", (job_id,))
            if not jobs:
                return None
            files = await fetch_dicts(
                conn, "SELECT f.*, (SELECT count(*) FROM chunks c WHERE c.document_id = f.document_id AND c.embedding IS NOT NULL)"
                " AS embedded_chunks FROM ingest_files f WHERE job_id = %s ORDER BY path", (job_id,))
        return jobs[0], files

    async def document(self, *, document_id: uuid.UUID | None = None, path: str = "") -> dict[str, Any] | None:
        """The newest document with this id or path, with its chunk count ``n``."""
        key, value = ("id", document_id) if document_id is not None else ("path", path)
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(
                conn, f"SELECT d.*, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS n FROM documents d "
                f"WHERE d.{key} = %s ORDER BY d.updated_at DESC LIMIT 1", (value,))
        return rows[0] if rows else None

    async def delete_document(self, doc_id: uuid.UUID) -> int:
        """Delete a document (its chunks and links go with it); the new generation, or 0 when there was none."""
        async with self.pool.connection() as conn, conn.transaction():
            deleted = (await conn.execute("DELETE FROM documents WHERE id = %s", (doc_id,))).rowcount > 0
            return await bump_generation(conn) if deleted else 0

    async def documents(self, project: str, path_like: str, limit: int) -> list[dict[str, Any]]:
        """Documents (with their chunk count ``n``), most recently updated first; ``path_like`` is a LIKE pattern."""
        async with self.pool.connection() as conn:
            return await fetch_dicts(
                conn, "SELECT d.*, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS n FROM documents d"
                " WHERE (%(p)s = '' OR d.project = %(p)s) AND (%(like)s = '' OR d.path LIKE %(like)s ESCAPE '\\')"
                " ORDER BY d.updated_at DESC, d.path LIMIT %(n)s", {"p": project, "like": path_like, "n": limit})

    async def library(self) -> dict[str, Any]:
        """Projects, types and tags with document counts; the number of documents, chunks and embedded chunks."""
        async with self.pool.connection() as conn:
            projects = await (await conn.execute(
                "SELECT project, count(*) FROM documents GROUP BY project ORDER BY count(*) DESC, project")).fetchall()
            types = await (await conn.execute("SELECT type, count(*) FROM documents GROUP BY type ORDER BY count(*) DESC, type")).fetchall()
            tags = await (await conn.execute(
                "SELECT t, count(*) FROM documents, unnest(tags) AS t GROUP BY t ORDER BY count(*) DESC, t LIMIT 500")).fetchall()
            sizes = await (await conn.execute(
                "SELECT (SELECT count(*) FROM documents), count(*), count(embedding) FROM chunks")).fetchone()
        documents, chunks, embedded = sizes or (0, 0, 0)
        return {"projects": projects, "types": types, "tags": tags, "documents": int(documents), "chunks": int(chunks),
                "chunks_embedded": int(embedded)}


def glob_to_like(pattern: str) -> str:
    """An fnmatch-style pattern (``*``, ``?``) as a LIKE pattern with ``\\`` escaping; other characters are literal."""
    out = []
    for ch in pattern:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)
