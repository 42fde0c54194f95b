"""Ingest's SQL: documents and their chunks, ingest jobs and the state of each of their files.

Every write that changes what search can find also advances the index
generation in the same transaction (shared.contracts.bump_generation), and
returns it so that the caller can announce it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool

from services.ingest.chunk import Chunk
from services.ingest.parse import ParseError
from shared.contracts import bump_generation
from shared.runtime import analyzer
from shared.runtime.db import VECTOR_SESSION, fetch_dicts

#: Advisory lock key: ordinary document writes take it shared, a document written in slices exclusively.
POSTINGS_LOCK = 0x7E55E4A0

_FILE_STATE = (
    "INSERT INTO ingest_files (job_id, path, document_id, state, reason, chunks, content_hash, warnings)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (job_id, path) DO UPDATE SET document_id=excluded.document_id,"
    " state=excluded.state, reason=excluded.reason, chunks=excluded.chunks, content_hash=excluded.content_hash,"
    " warnings=excluded.warnings, updated_at=now()")
_UPSERT_DOCUMENT = (
    "INSERT INTO documents (id, project, path, title, type, tags, media_type, content_hash, warnings, created_at,"
    " updated_at, root, size_bytes, embedded, user_fields, kind, body_hash, enrich_state)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,coalesce(%s, now()),now(),%s,%s,false,%s,%s,%s,%s)"
    " ON CONFLICT (id) DO UPDATE SET path=excluded.path, title=excluded.title, type=excluded.type, tags=excluded.tags,"
    " media_type=excluded.media_type, content_hash=excluded.content_hash, warnings=excluded.warnings,"
    " created_at=coalesce(%s, documents.created_at), updated_at=now(), root=excluded.root,"
    " size_bytes=excluded.size_bytes, embedded=false, user_fields=excluded.user_fields,"
    # an unchanged kind of the user's wins; otherwise the last enrichment's stays until it is redone
    " kind=CASE WHEN excluded.kind <> '' THEN excluded.kind ELSE documents.kind END, body_hash=excluded.body_hash,"
    " enrich_state=excluded.enrich_state, enrich_reason=''")
_INSERT_CHUNK = (
    "INSERT INTO chunks (id, document_id, ord, text, heading_path, char_start, char_end, line_start, line_end,"
    " project, context, lex_len) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")
_ADD_LEXICAL_STATS = (
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
    user_fields: Sequence[str] = ()
    kind: str = ""
    body_hash: str = ""
    enrich_state: str = "pending"

    def upsert_args(self) -> tuple[Any, ...]:
        return (self.id, self.project, self.path, self.title, self.type, self.tags, self.media_type, self.content_hash, self.warnings,
                self.created, self.root, self.size_bytes, sorted(self.user_fields), self.kind, self.body_hash, self.enrich_state,
                self.created)


def chunk_contexts(doc: NewDocument, chunks: Sequence[Chunk] | None = None) -> list[str]:
    """Each chunk's context (what is indexed and embedded with its text): the title, then its heading path."""
    return [" / ".join([doc.title, *[h for h in c.heading_path if h != doc.title]]) for c in (doc.chunks if chunks is None else chunks)]


class IngestStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def lookup(self, project: str, path: str) -> tuple[uuid.UUID, str] | None:
        """(id, content hash) of the document at this path: a renamed file keeps the id it was first stored under."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT id, content_hash FROM documents WHERE project = %s AND path = %s",
                                            (project, path))).fetchone()
        return (row[0], str(row[1])) if row else None

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
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT id FROM documents WHERE project = %s AND body_hash = %s AND id <> %s"
                                            " AND type <> 'review' ORDER BY created_at LIMIT 1", (project, body_hash, exclude))).fetchone()
        return row[0] if row else None

    async def nearest_chunk(self, project: str, vectors: Sequence[Any], exclude: uuid.UUID) -> tuple[uuid.UUID, float] | None:
        """The document of the stored chunk most similar to any of ``vectors`` in the project, and that cosine."""
        best: tuple[uuid.UUID, float] | None = None
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(VECTOR_SESSION)
            for vec in vectors:
                row = await (await conn.execute(
                    "SELECT c.document_id, 1 - (c.embedding <=> %(v)s) FROM chunks c WHERE c.project = %(p)s AND c.embedding IS NOT NULL"
                    " AND c.document_id <> %(x)s AND EXISTS (SELECT 1 FROM documents d WHERE d.id = c.document_id AND d.type <> 'review')"
                    " ORDER BY c.embedding <=> %(v)s LIMIT 1", {"v": vec, "p": project, "x": exclude})).fetchone()
                if row and (best is None or float(row[1]) > best[1]):
                    best = (row[0], float(row[1]))
        return best

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
                await conn.execute(_ADD_LEXICAL_STATS, (doc.project, doc.id, len(ids), sum(postings.lengths)))
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
            await conn.execute(_ADD_LEXICAL_STATS, (doc.project, doc.id, written, total_len))
            generation = await bump_generation(conn)
            await self.file_state(job_id, FileState(doc.path, "chunked", "", doc.id, written, doc.content_hash, doc.warnings), conn=conn)
        return generation, written

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
                await conn.execute(_ADD_LEXICAL_STATS, (project, doc_id, len(rs), sum(p.lengths)))
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

    async def recent_jobs(self, limit: int) -> list[uuid.UUID]:
        """The ids of the newest ``limit`` jobs."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute("SELECT id FROM ingest_jobs ORDER BY created_at DESC LIMIT %s", (limit,))).fetchall()
        return [r[0] for r in rows]

    async def chunk_spans(self, doc_id: uuid.UUID) -> list[dict[str, Any]]:
        """A document's chunks in order: id, ord, line range, heading path, length and whether it is embedded."""
        async with self.pool.connection() as conn:
            return await fetch_dicts(
                conn, "SELECT id, ord, line_start, line_end, heading_path, length(text) AS chars, embedding IS NOT NULL AS embedded"
                " FROM chunks WHERE document_id = %s ORDER BY ord", (doc_id,))

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
