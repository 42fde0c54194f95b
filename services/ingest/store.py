"""Ingest's SQL: documents and their chunks, ingest jobs and the state of each of their files.

Ingest owns documents, chunks, ingest_jobs, ingest_files and index_state (and, in postings.py,
the lexical index). Every write that changes what search can find also advances the index
generation in the same transaction (generation.bump_generation), and returns it so that the
caller can announce it. Vectors are embed's (chunk_vectors): read here, never written.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.ingest.chunk import Chunk
from services.ingest.generation import bump_generation
from services.ingest.parse import ParseError
from services.ingest.pipeline import FileState, NewDocument, chunk_contexts
from services.ingest.postings import ADD_LEXICAL_STATS, LexicalParams, chunk_postings, delete_postings, write_postings
from shared.runtime.db import fetch_dicts

#: Advisory lock key: ordinary document writes take it shared, a document written in slices exclusively.
POSTINGS_LOCK = 0x7E55E4A0

_FILE_STATE = (
    "INSERT INTO ingest_files (job_id, path, document_id, state, reason, chunks, content_hash, warnings)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (job_id, path) DO UPDATE SET document_id=excluded.document_id,"
    " state=excluded.state, reason=excluded.reason, chunks=excluded.chunks, content_hash=excluded.content_hash,"
    " warnings=excluded.warnings, updated_at=now()")
_JOB_FILES = ("SELECT f.*, (SELECT count(*) FROM chunk_vectors v WHERE v.document_id = f.document_id) AS embedded_chunks"
              " FROM ingest_files f WHERE job_id = %s ORDER BY path")
_JOB_STATES = (
    "SELECT state, count(*) AS n, coalesce(sum(chunks), 0)::bigint AS chunks, coalesce(sum(CASE state WHEN 'embedded' THEN chunks"
    " WHEN 'chunked' THEN least(chunks, (SELECT count(*) FROM chunk_vectors v WHERE v.document_id = f.document_id)) ELSE 0 END),"
    " 0)::bigint AS embedded_chunks FROM ingest_files f WHERE job_id = %s GROUP BY state")
_UPSERT_DOCUMENT = (
    "INSERT INTO documents (id, project, path, title, type, tags, media_type, content_hash, warnings, created_at,"
    " updated_at, root, size_bytes, embedded, user_fields, kind, body_hash, enrich_state, shingle_bands)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,coalesce(%s, now()),now(),%s,%s,false,%s,%s,%s,%s,%s)"
    " ON CONFLICT (id) DO UPDATE SET path=excluded.path, title=excluded.title, type=excluded.type, tags=excluded.tags,"
    " media_type=excluded.media_type, content_hash=excluded.content_hash, warnings=excluded.warnings,"
    " created_at=coalesce(%s, documents.created_at), updated_at=now(), root=excluded.root,"
    " size_bytes=excluded.size_bytes, embedded=false, user_fields=excluded.user_fields,"
    # an unchanged kind of the user's wins; otherwise the last enrichment's stays until it is redone
    " kind=CASE WHEN excluded.kind <> '' THEN excluded.kind ELSE documents.kind END, body_hash=excluded.body_hash,"
    " enrich_state=excluded.enrich_state, enrich_reason='', shingle_bands=excluded.shingle_bands")
#: The backlog's pace is the work done over this many minutes.
PACE_MINUTES = 10
_INSERT_CHUNK = (
    "INSERT INTO chunks (id, document_id, ord, text, heading_path, char_start, char_end, line_start, line_end,"
    " project, context, lex_len) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")



@dataclass(frozen=True)
class Enrichment:
    """What chat's enrichment found for a document (state 'enriched'), or why not (another state and a reason)."""

    state: str
    reason: str = ""
    kind: str = ""
    title: str = ""
    summary: str = ""
    tags: Sequence[str] = ()
    entities: Sequence[dict[str, str]] = ()


class IngestStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def lookup(self, project: str, path: str) -> tuple[uuid.UUID, str, bool] | None:
        """(id, content hash, embedded) of the document at this path: a renamed file keeps the id it was first stored
        under."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT id, content_hash, embedded FROM documents WHERE project = %s AND path = %s",
                                            (project, path))).fetchone()
        return (row[0], str(row[1]), bool(row[2])) if row else None

    async def wait_for_vectors(self, job_id: uuid.UUID, f: FileState) -> bool:
        """An unchanged file whose document is stored but not yet embedded (an import stopped before its vectors were
        written): its file waits in 'chunked' with the document's chunk count, as a new one would. False when the
        document was marked embedded meanwhile (the file is then 'unchanged'), so nothing waits on an event that has
        passed: mark_embedded sets the flag before it moves the files, so either it sees this file or this sees the flag."""
        async with self.pool.connection() as conn:  # committed before the flag is read
            n = await (await conn.execute("SELECT count(*) FROM chunks WHERE document_id = %s", (f.document_id,))).fetchone()
            await conn.execute(_FILE_STATE, (job_id, f.path, f.document_id, "chunked", "", n[0] if n else 0, f.content_hash, f.warnings))
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT embedded FROM documents WHERE id = %s", (f.document_id,))).fetchone()
            if row is None or not row[0]:
                return True
            await conn.execute("UPDATE ingest_files SET state = 'unchanged', updated_at = now() WHERE job_id = %s AND path = %s"
                               " AND state = 'chunked'", (job_id, f.path))
        return False

    async def rename(self, doc_id: uuid.UUID, new_path: str, root: str) -> int:
        """A file moved: the document keeps its id, chunks, vectors and links; the new generation, or 0 when it is gone."""
        async with self.pool.connection() as conn, conn.transaction():
            moved = (await conn.execute("UPDATE documents SET path = %s, root = %s, updated_at = now() WHERE id = %s",
                                        (new_path, root, doc_id))).rowcount
            return await bump_generation(conn) if moved else 0

    async def under_root(self, root: str) -> dict[str, tuple[uuid.UUID, str]]:
        """path → (id, content hash) of the documents stored from a folder."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT path, id, content_hash FROM documents WHERE root = %s", (root,))).fetchall()
        return {str(p): (i, str(h)) for p, i, h in rows}

    async def paths_under(self, prefix: str) -> list[str]:
        """Paths of the documents stored from files under a folder (``prefix`` ends with a slash)."""
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT path FROM documents WHERE path LIKE %s ESCAPE '\\'", (like,))).fetchall()
        return [str(r[0]) for r in rows]

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

    async def replace_document(self, job_id: uuid.UUID, doc: NewDocument, lexical: LexicalParams = LexicalParams()) -> int:
        """Store the document with its new chunks and their postings (the old ones go), mark its file 'chunked'; the new generation."""
        ids = [uuid.uuid4() for _ in doc.chunks]
        contexts = chunk_contexts(doc)
        postings = await asyncio.to_thread(chunk_postings, ids, contexts, [c.text for c in doc.chunks], lexical.title_weight)
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (POSTINGS_LOCK,))
            await conn.execute(_UPSERT_DOCUMENT, doc.upsert_args())
            await delete_postings(conn, [doc.id])
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (doc.id,))
            if doc.chunks:
                async with conn.cursor() as cur:
                    await cur.executemany(_INSERT_CHUNK, [
                        (cid, doc.id, c.ord, c.text, list(c.heading_path), c.char_start, c.char_end, c.line_start, c.line_end,
                         doc.project, ctx, length) for cid, c, ctx, length in zip(ids, doc.chunks, contexts, postings.lengths, strict=True)])
                await conn.execute(ADD_LEXICAL_STATS, (doc.project, doc.id, len(ids), sum(postings.lengths)))
                await write_postings(conn, doc.project, doc.id, postings, lexical)
            generation = await bump_generation(conn)
            await self.file_state(job_id, FileState(doc.path, "chunked", "", doc.id, len(doc.chunks), doc.content_hash,
                                                    doc.warnings), conn=conn)
        return generation

    async def replace_document_in_slices(self, job_id: uuid.UUID, doc: NewDocument, batches: AsyncIterator[Sequence[Chunk]],
                                         lexical: LexicalParams = LexicalParams()) -> tuple[int, int]:
        """``replace_document`` for a file read a slice at a time: one transaction, a batch of chunks (and their
        postings) written per slice, so memory follows the slice. It holds the postings lock exclusively (ordinary
        writes hold it shared): its postings go in over several statements, which must not interleave with
        another writer's and deadlock on term rows. (new generation, chunks written)."""
        written, total_len = 0, 0.0
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (POSTINGS_LOCK,))
            await conn.execute(_UPSERT_DOCUMENT, doc.upsert_args())
            await delete_postings(conn, [doc.id])
            await conn.execute("DELETE FROM chunks WHERE document_id = %s", (doc.id,))
            async for batch in batches:
                if not batch:
                    continue
                ids = [uuid.uuid4() for _ in batch]
                contexts = chunk_contexts(doc, batch)
                postings = await asyncio.to_thread(chunk_postings, ids, contexts, [c.text for c in batch], lexical.title_weight)
                async with conn.cursor() as cur:
                    await cur.executemany(_INSERT_CHUNK, [
                        (cid, doc.id, c.ord, c.text, list(c.heading_path), c.char_start, c.char_end, c.line_start, c.line_end,
                         doc.project, ctx, length) for cid, c, ctx, length in zip(ids, batch, contexts, postings.lengths, strict=True)])
                await write_postings(conn, doc.project, doc.id, postings, lexical)
                written += len(batch)
                total_len += sum(postings.lengths)
                del postings, contexts, ids
            if not written:
                raise ParseError("no text to index in the file")
            await conn.execute(ADD_LEXICAL_STATS, (doc.project, doc.id, written, total_len))
            generation = await bump_generation(conn)
            await self.file_state(job_id, FileState(doc.path, "chunked", "", doc.id, written, doc.content_hash, doc.warnings), conn=conn)
        return generation, written

    # -- what others tell ingest ------------------------------------------------------------------------------------
    async def mark_embedded(self, doc_ids: Sequence[uuid.UUID], advance: bool) -> tuple[int, list[uuid.UUID]]:
        """Embed has written every vector of ``doc_ids``: mark them embedded. (The new generation when anything changed
        or ``advance`` (vectors were written); the documents now waiting for enrichment.) Their files are marked
        by ``files_embedded``, after the generation is announced."""
        async with self.pool.connection() as conn, conn.transaction():
            done = [r[0] for r in await (await conn.execute(
                "UPDATE documents SET embedded = true WHERE id = ANY(%s) AND NOT embedded RETURNING id", (list(doc_ids),))).fetchall()]
            generation = await bump_generation(conn) if done or advance else 0
            enrich = [r[0] for r in await (await conn.execute(
                "SELECT id FROM documents WHERE id = ANY(%s) AND enrich_state = 'pending'", (done,))).fetchall()] if done else []
        return generation, enrich

    async def files_embedded(self, doc_ids: Sequence[uuid.UUID]) -> None:
        """The files of embedded documents reach their last state (what `tessera ingest` waits on)."""
        async with self.pool.connection() as conn:
            await conn.execute("UPDATE ingest_files SET state = 'embedded', updated_at = now() WHERE document_id = ANY(%s)"
                               " AND state = 'chunked'", (list(doc_ids),))

    async def embedded_unmarked(self, age_s: float) -> list[uuid.UUID]:
        """Documents not marked embedded for ``age_s`` whose every chunk has a vector (embed's event was lost)."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT d.id FROM documents d WHERE NOT d.embedded AND d.updated_at < now() - make_interval(secs => %s)"
                " AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id AND NOT EXISTS"
                " (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id)) LIMIT 500", (age_s,))).fetchall()
        return [r[0] for r in rows]

    async def set_enrichment(self, doc_id: uuid.UUID, content_hash: str, e: Enrichment) -> tuple[bool, int]:
        """Chat's enrichment of a document, where the document is still the one that was read; the user's own fields
        keep their values. (Whether it was stored; the new generation when the document was enriched, else 0.)"""
        async with self.pool.connection() as conn, conn.transaction():
            if e.state != "enriched":
                stored = (await conn.execute("UPDATE documents SET enrich_state = %s, enrich_reason = %s, enrich_hash = content_hash,"
                                             " enriched_at = CASE WHEN %s = 'unenriched' THEN now() ELSE enriched_at END"
                                             " WHERE id = %s AND content_hash = %s", (e.state, e.reason, e.state, doc_id, content_hash))).rowcount
                return stored > 0, 0
            changed = (await conn.execute(
                "UPDATE documents SET kind = CASE WHEN 'type' = ANY(user_fields) AND kind <> '' THEN kind ELSE %s END,"
                " title = CASE WHEN 'title' = ANY(user_fields) OR %s = '' THEN title ELSE %s END, summary = %s, auto_tags = %s,"
                " entities = %s, enrich_state = 'enriched', enrich_reason = '', enrich_hash = content_hash, enriched_at = now()"
                " WHERE id = %s AND content_hash = %s",
                (e.kind, e.title, e.title, e.summary, list(e.tags), Jsonb(list(e.entities)), doc_id, content_hash))).rowcount
            return changed > 0, (await bump_generation(conn) if changed else 0)

    async def promote_enrichment(self, doc_ids: Sequence[uuid.UUID], project: str | None) -> list[tuple[uuid.UUID, bool]]:
        """Deferred documents made pending (those listed, or a project's, or every one with project ''): (id, embedded)."""
        where, args = ("id = ANY(%s)", (list(doc_ids),)) if doc_ids else ("project = %s", (project,)) if project else ("true", ())
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(f"UPDATE documents SET enrich_state = 'pending' WHERE enrich_state = 'deferred' AND {where}"
                                             " RETURNING id, embedded", args)).fetchall()
        return [(r[0], bool(r[1])) for r in rows]

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
            await delete_postings(conn, [d for d, _ in gone])
            await conn.execute("DELETE FROM documents WHERE id = ANY(%s)", ([d for d, _ in gone],))
            generation = await bump_generation(conn)
            for doc_id, path in gone:
                await self.file_state(job_id, FileState(path, "deleted", "the file is gone", doc_id), conn=conn)
        return len(gone), generation

    async def job(self, job_id: uuid.UUID, by_state: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The job's row and its files' rows (with ``embedded_chunks``), or None. ``by_state``: its files counted by
        state instead (``state``, ``n``, ``chunks``, ``embedded_chunks``): what a watched job costs per update whatever
        its size, vectors counted only for the files being embedded (a file is embedded once all its chunks are)."""
        async with self.pool.connection() as conn:
            jobs = await fetch_dicts(conn, "SELECT * FROM ingest_jobs WHERE id = %s", (job_id,))
            if not jobs:
                return None
            files = await fetch_dicts(conn, _JOB_STATES if by_state else _JOB_FILES, (job_id,))
        return jobs[0], files

    async def recent_jobs(self, limit: int) -> list[uuid.UUID]:
        """The ids of the newest ``limit`` jobs."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT id FROM ingest_jobs ORDER BY created_at DESC LIMIT %s", (limit,))).fetchall()
        return [r[0] for r in rows]

    async def chunk_spans(self, doc_id: uuid.UUID) -> list[dict[str, Any]]:
        """A document's chunks in order: id, ord, line range, heading path, length and whether it is embedded."""
        async with self.pool.connection() as conn:
            return await fetch_dicts(
                conn, "SELECT id, ord, line_start, line_end, heading_path, length(text) AS chars,"
                " EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id) AS embedded FROM chunks c WHERE document_id = %s ORDER BY ord", (doc_id,))

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
            await delete_postings(conn, [doc_id])
            deleted = (await conn.execute("DELETE FROM documents WHERE id = %s", (doc_id,))).rowcount > 0
            return await bump_generation(conn) if deleted else 0

    async def documents(self, project: str, path_like: str, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Documents (with their chunk count ``n``), most recently updated first; ``path_like`` is a LIKE pattern."""
        async with self.pool.connection() as conn:
            return await fetch_dicts(
                conn, "SELECT d.*, (SELECT count(*) FROM chunks c WHERE c.document_id = d.id) AS n FROM documents d"
                " WHERE (%(p)s = '' OR d.project = %(p)s) AND (%(like)s = '' OR d.path LIKE %(like)s ESCAPE '\\')"
                " ORDER BY d.updated_at DESC, d.path, d.id LIMIT %(n)s OFFSET %(o)s", {"p": project, "like": path_like, "n": limit, "o": offset})

    async def library(self) -> dict[str, Any]:
        """Projects, types and tags with document counts; the number of documents, chunks and embedded chunks."""
        async with self.pool.connection() as conn:
            projects = await (await conn.execute(
                "SELECT project, count(*) FROM documents GROUP BY project ORDER BY count(*) DESC, project")).fetchall()
            types = await (await conn.execute("SELECT type, count(*) FROM documents GROUP BY type ORDER BY count(*) DESC, type")).fetchall()
            tags = await (await conn.execute(
                "SELECT t, count(*) FROM documents, unnest(tags) AS t GROUP BY t ORDER BY count(*) DESC, t LIMIT 500")).fetchall()
            sizes = await (await conn.execute(
                "SELECT (SELECT count(*) FROM documents), count(*), (SELECT count(*) FROM chunk_vectors) FROM chunks")).fetchone()
            backlog = await (await conn.execute(
                f"SELECT (SELECT count(*) FROM chunk_vectors WHERE created_at > now() - interval '{PACE_MINUTES} minutes'),"
                " count(*) FILTER (WHERE enrich_state = 'pending'), count(*) FILTER (WHERE enrich_state = 'deferred'),"
                f" count(*) FILTER (WHERE enriched_at > now() - interval '{PACE_MINUTES} minutes') FROM documents")).fetchone()
        documents, chunks, embedded = sizes or (0, 0, 0)
        vectors, enrich_waiting, deferred, enriched = backlog or (0, 0, 0, 0)
        return {"projects": projects, "types": types, "tags": tags, "documents": int(documents), "chunks": int(chunks),
                "chunks_embedded": int(embedded),
                "backlog": {"chunks_waiting": max(0, int(chunks) - int(embedded)), "chunks_per_minute": int(vectors) / PACE_MINUTES,
                            "enrich_waiting": int(enrich_waiting), "enrich_deferred": int(deferred),
                            "enriched_per_minute": int(enriched) / PACE_MINUTES}}


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
