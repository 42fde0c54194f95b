"""Wires ingest to gRPC, PostgreSQL and JetStream.

One transaction per document: the document row, all its chunks (old ones deleted,
so search never sees half of a changed file) and the index generation. Embedding
work goes to the TESSERA_EMBED work queue after the commit; chunks whose message
was lost are re-queued by the embed service's sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats.errors
import numpy as np
import psycopg
from google.protobuf.timestamp_pb2 import Timestamp

from services.ingest.chunk import Chunk, ChunkConfig, chunk_text, default_tokenizer
from services.ingest.large import file_digest, read_large
from services.ingest.parse import Budget, ParseError, content_hash, media_type_for, parse
from services.ingest.paths import walk
from services.ingest.store import FileState, IngestStore, LexicalParams, NewDocument, chunk_contexts, glob_to_like
from services.ingest.watch import Watcher, watch_leader
from shared.contracts import EMBED_STREAM, EMBED_SUBJECT, INDEX_SUBJECT, REVIEW_TYPE, embed_request, enrich_enabled, enrichment_proto
from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from shared.gen.tessera.v1 import embed_pb2, embed_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from shared.runtime import bus
from shared.runtime.roots import AllowedRoots, ingest_roots, secret_reason
from shared.runtime.service import Runtime, main

SERVICE = "ingest"
NEEDS = ("postgres", "nats")
STATES = {"queued": ingest_pb2.FILE_STATE_QUEUED, "chunked": ingest_pb2.FILE_STATE_CHUNKED,
          "embedded": ingest_pb2.FILE_STATE_EMBEDDED, "failed": ingest_pb2.FILE_STATE_FAILED,
          "unchanged": ingest_pb2.FILE_STATE_UNCHANGED, "deleted": ingest_pb2.FILE_STATE_DELETED}
#: The most lines ReadDocument returns at once.
MAX_READ_LINES = 5000
MAX_LIST_JOBS = 200
#: Kinds of file read a slice at a time when they are over TESSERA_INGEST_BATCH_BYTES.
#: Chunks whose postings are computed and written together, in a file read a slice at a time.
WRITE_CHUNKS = 128
LARGE_MEDIA = frozenset({"text/markdown", "text/plain", "application/pdf"})
#: How long a document's embedding request may wait for JetStream's ack before the sweep is left to queue it.
EMBED_PUBLISH_TIMEOUT_S = 1.5
TERMINAL = ("embedded", "failed", "unchanged", "deleted")
log = logging.getLogger("tessera.ingest")


def no_nul(**fields: str) -> None:
    """PostgreSQL text and file paths cannot hold a NUL character: such a field is the caller's mistake, said so."""
    for name, value in fields.items():
        if "\x00" in value:
            raise InvalidArgument(f"ingest: {name} contains a NUL character")


def document_id(project: str, path: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"tessera:{project}:{path}")


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def document_proto(row: dict[str, Any]) -> ingest_pb2.Document:
    return ingest_pb2.Document(document_id=str(row["id"]), path=row["path"], project=row["project"], title=row["title"],
                               type=row["type"], tags=row["tags"], created_at=_ts(row["created_at"]),
                               updated_at=_ts(row["updated_at"]), content_hash=row["content_hash"], chunks=row["n"],
                               warnings=row["warnings"], enrichment=enrichment_proto(row))


@dataclasses.dataclass
class Duplicate:
    """A capture that was not stored: the note it duplicates."""

    document_id: uuid.UUID
    similarity: float


def _ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


class Ingestor:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        # The data directory's imports/ (e.g. `tessera eval beir` corpora) is always readable.
        self.roots = AllowedRoots(ingest_roots(s), component="ingest", setting="TESSERA_INGEST_ROOTS")
        self.config = ChunkConfig(s.ingest.chunk_tokens, s.ingest.chunk_overlap)
        self.tokenizer = default_tokenizer()
        self.js = rt.nats.jetstream()
        self.store = IngestStore(rt.db)
        self.lexical = LexicalParams(s.search.title_weight, s.search.bm25_k1, s.search.bm25_b)
        self.tasks: set[asyncio.Task[None]] = set()
        self.dedup_locks: dict[str, asyncio.Lock] = {}

    # -- the lexical index's upkeep -------------------------------------------
    async def maintain_postings(self, interval_s: float = 30.0) -> None:
        """Index chunks written before the postings table existed, then keep the impacts near the live mean length."""
        while True:
            try:
                while (n := await self.store.backfill_postings(self.lexical)):
                    log.info("ingest: indexed the postings of %d older documents", n)
                for project, drift in await self.store.weight_drift():
                    if abs(drift) > self.rt.settings.search.reweight_drift:
                        rows = await self.store.reweight(project, self.lexical)
                        log.info("ingest: re-weighted %d postings of project %r (mean chunk length moved %+.0f%%)",
                                 rows, project, 100 * drift)
            except psycopg.Error as exc:  # the next round retries; search stays exact meanwhile
                log.warning("ingest: postings upkeep failed (%s); retrying in %.0f s", exc, interval_s)
            await asyncio.sleep(interval_s)

    # -- one document -------------------------------------------------------
    async def ingest_bytes(self, job_id: uuid.UUID, path: str, data: bytes, project: str, media_type: str = "",
                           root: str = "", extra: dict[str, str] | None = None, dedup: float | None = None) -> Duplicate | None:
        """Parse, chunk and store one file. With ``dedup`` (a cosine threshold), a near-duplicate of a note of the
        same project is not stored: the note it duplicates is returned."""
        digest = content_hash(data)
        settings = self.rt.settings.ingest
        budget = Budget.for_size(len(data), settings.parse_base_s, settings.parse_s_per_mb)
        try:
            parsed = await asyncio.to_thread(parse, data, path, media_type, settings.max_bytes, budget)
        except ParseError as exc:
            await self._file_state(job_id, path, "failed", str(exc), content_hash=digest)
            return None
        project = project or parsed.project
        found = await self.store.lookup(project, path)
        doc_id = found[0] if found else document_id(project, path)
        if found and found[1] == digest:
            await self._file_state(job_id, path, "unchanged", "", doc_id, content_hash=digest, warnings=parsed.warnings)
            return None
        source = data.decode("utf-8-sig") if parsed.media_type != "application/pdf" else parsed.text
        try:
            chunks = await asyncio.to_thread(chunk_text, source, parsed.body_offset, markdown=parsed.media_type == "text/markdown",
                                             config=self.config, tokenizer=self.tokenizer, budget=budget)
        except ParseError as exc:
            await self._file_state(job_id, path, "failed", str(exc), content_hash=digest)
            return None
        title = (extra or {}).get("title") or parsed.title
        extra_tags = {t for t in (extra or {}).get("tags", "").split(",") if t}
        tags = sorted(set(parsed.tags) | extra_tags)
        user = set(parsed.user_fields) | ({"title"} if (extra or {}).get("title") else set()) | ({"tags"} if extra_tags else set())
        doc = NewDocument(doc_id, project, path, title, parsed.type, tags, parsed.media_type, digest, parsed.warnings, parsed.created, root,
                          len(data), chunks, sorted(user), parsed.kind, parsed.body_hash, self.enrich_state(project, parsed.type))
        if dedup is None or parsed.type == REVIEW_TYPE:
            await self._store(job_id, doc)
            return None
        vectors = await self.chunk_vectors(doc)  # before the lock: the critical section is database work only
        # Check and store as one step, so concurrent twins find each other: one waiter per project in this process
        # (a pooled connection each would starve the pool), and PostgreSQL's advisory lock across instances.
        async with self.dedup_locks.setdefault(project, asyncio.Lock()), self.store.dedup_lock(project):
            dup = await self.find_duplicate(doc, vectors, dedup)
            if dup is not None:
                row = await self.store.document(document_id=dup.document_id)
                await self._file_state(job_id, path, "unchanged", f"a duplicate of {row['path'] if row else dup.document_id} "
                                       f"(similarity {dup.similarity:.3f}); not stored", dup.document_id, content_hash=digest)
                return dup
            await self._store(job_id, doc)
        return None

    async def _store(self, job_id: uuid.UUID, doc: NewDocument) -> None:
        generation = await self.store.replace_document(job_id, doc, self.lexical)
        await self._announce(doc.id, job_id, generation)

    def enrich_state(self, project: str, doc_type: str) -> str:
        return "pending" if enrich_enabled(self.rt.settings.knowledge.enrich, project) and doc_type != REVIEW_TYPE else "off"

    async def chunk_vectors(self, doc: NewDocument) -> list[np.ndarray]:
        """The new chunks' vectors (as embed will store them), for the near-duplicate check; none when embed is away."""
        if not doc.chunks:
            return []
        texts = [f"{ctx}\n{c.text}" if ctx else c.text for c, ctx in zip(doc.chunks, chunk_contexts(doc), strict=True)]
        try:
            stub = await self.rt.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
            reply = await stub.Embed(embed_pb2.EmbedRequest(texts=texts[:64], purpose=embed_pb2.EMBED_PURPOSE_DOCUMENT))
        except grpc.aio.AioRpcError as exc:
            # The capture is not lost for want of a vector: it is stored, and only exact twins are looked for.
            log.warning("dedup: the embed service did not answer; only identical notes were looked for", extra={"code": exc.code().name})
            return []
        return [np.asarray(v.values, dtype=np.float32) for v in reply.vectors]

    async def find_duplicate(self, doc: NewDocument, vectors: list[np.ndarray], threshold: float) -> Duplicate | None:
        """The same body in the project, or a stored chunk at least ``threshold`` similar to one of the new chunks."""
        same = await self.store.same_body(doc.project, doc.body_hash, doc.id)
        if same is not None:
            return Duplicate(same, 1.0)
        best = await self.store.nearest_chunk(doc.project, vectors, doc.id) if vectors else None
        return Duplicate(best[0], best[1]) if best is not None and best[1] >= threshold else None

    async def ingest_large(self, job_id: uuid.UUID, path: Path, size: int, project: str, root: str, opened: Path | None = None) -> None:
        """A file over TESSERA_INGEST_BATCH_BYTES: hashed, read, chunked and stored a slice at a time (large.py).
        ``opened`` is where to read it (an open descriptor's /proc path, so the file checked is the file read);
        ``path`` is what it is called."""
        source = opened or path
        budget = Budget.for_size(size, self.rt.settings.ingest.parse_base_s, self.rt.settings.ingest.parse_s_per_mb)
        digest = await asyncio.to_thread(file_digest, source)
        head, slices = await asyncio.to_thread(read_large, source, self.rt.settings.ingest.batch_bytes, str(path))
        project = project or head.project
        found = await self.store.lookup(project, str(path))
        doc_id = found[0] if found else document_id(project, str(path))
        if found and found[1] == digest:
            await self._file_state(job_id, str(path), "unchanged", "", doc_id, content_hash=digest, warnings=head.warnings)
            return
        markdown = head.media_type == "text/markdown"
        headings: list[tuple[int, str]] = []
        done = 0

        def next_batch() -> list[Chunk] | None:
            nonlocal done
            piece = next(slices, None)
            if piece is None:
                return None
            chunks = chunk_text(piece.text, piece.body_start, markdown=markdown, config=self.config, tokenizer=self.tokenizer,
                                headings=headings, budget=budget)
            out = [dataclasses.replace(c, ord=done + i, char_start=c.char_start + piece.char_offset, char_end=c.char_end + piece.char_offset,
                                       line_start=c.line_start + piece.line_offset, line_end=c.line_end + piece.line_offset)
                   for i, c in enumerate(chunks)]
            done += len(out)
            return out

        async def batches() -> AsyncIterator[list[Chunk]]:
            while True:
                batch = await asyncio.to_thread(next_batch)
                if batch is None:
                    return
                for i in range(0, len(batch), WRITE_CHUNKS):  # postings (a term counter per chunk) for a few chunks at a time
                    yield batch[i:i + WRITE_CHUNKS]
                del batch  # the slice's chunks go before the next slice is read

        doc = NewDocument(doc_id, project, str(path), head.title, head.type, head.tags, head.media_type, digest, head.warnings, head.created,
                          root, size, [], sorted(head.user_fields), head.kind, "", self.enrich_state(project, head.type))
        generation, _ = await self.store.replace_document_in_slices(job_id, doc, batches(), self.lexical)
        await self._announce(doc_id, job_id, generation)

    async def _announce(self, doc_id: uuid.UUID, job_id: uuid.UUID, generation: int) -> None:
        """Queue the document's embedding and tell searchers the index changed."""
        try:
            await self.rt.nats.jetstream().publish(EMBED_SUBJECT, embed_request(doc_id, job_id), timeout=EMBED_PUBLISH_TIMEOUT_S,
                                                   headers=bus.message_headers())
        except (nats.errors.Error, TimeoutError) as exc:
            # NATS is away: the document is stored (the capture is safe), and embed's sweep queues its chunks again.
            log.warning("embedding request not queued; the embed sweep will queue it", extra={"document": str(doc_id), "error": str(exc)})
        await bus.publish_event(self.rt.nats, INDEX_SUBJECT, {"generation": generation, "document_id": str(doc_id)})

    async def _file_state(self, job_id: uuid.UUID, path: str, state: str, reason: str = "", doc_id: uuid.UUID | None = None,
                          chunks: int = 0, content_hash: str = "", warnings: list[str] | None = None) -> None:
        await self.store.file_state(job_id, FileState(path, state, reason, doc_id, chunks, content_hash, warnings or []))

    # -- jobs -----------------------------------------------------------------
    async def new_job(self, root: str, project: str, files: list[str]) -> uuid.UUID:
        return await self.store.new_job(root, project, files)

    async def run_folder(self, job_id: uuid.UUID, root: Path, project: str, files: list[tuple[Path, str | None]],
                         keep_missing: bool) -> None:
        seen: set[str] = set()
        for path, refusal in files:
            seen.add(str(path))
            if refusal:
                await self._file_state(job_id, str(path), "failed", refusal)
                continue
            try:
                # What was opened is checked (roots, secrets, no symlink swapped in); every later read goes through
                # the open descriptor, never the name again.
                with self.roots.open(path) as f:
                    size = os.fstat(f.fileno()).st_size
                    if size > self.rt.settings.ingest.max_bytes:
                        raise ParseError(f"{size} bytes is over the configured limit of {self.rt.settings.ingest.max_bytes} bytes"
                                         " (TESSERA_INGEST_MAX_BYTES)")
                    if size > self.rt.settings.ingest.batch_bytes and media_type_for(str(path), "") in LARGE_MEDIA:
                        await self.ingest_large(job_id, path, size, project, root=str(root), opened=Path(f"/proc/self/fd/{f.fileno()}"))
                        continue
                    data = await asyncio.to_thread(f.read)
                await self.ingest_bytes(job_id, str(path), data, project, root=str(root))
            except PermissionDenied as exc:
                await self._file_state(job_id, str(path), "failed", exc.message)
            except (ParseError, OSError) as exc:
                await self._file_state(job_id, str(path), "failed", str(exc) if isinstance(exc, ParseError) else
                                       f"cannot read the file ({exc.strerror or exc})")
            except Exception as exc:
                log.exception("ingest failed", extra={"path": str(path)})
                await self._file_state(job_id, str(path), "failed", f"internal error: {type(exc).__name__}: {exc}")
        if not keep_missing and root.is_dir():
            gone, generation = await self.store.remove_missing(job_id, str(root), project, seen)
            if gone:
                await bus.publish_event(self.rt.nats, INDEX_SUBJECT, {"generation": generation, "deleted": gone})
        await self.store.finish_job(job_id)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def job_proto(self, job_id: uuid.UUID, include_files: bool) -> ingest_pb2.IngestJob | None:
        found = await self.store.job(job_id)
        if found is None:
            return None
        job, files = found
        counts = ingest_pb2.JobCounts(files=len(files))
        for f in files:
            setattr(counts, f["state"], getattr(counts, f["state"]) + 1)
            counts.chunks += f["chunks"]
            counts.chunks_embedded += min(f["chunks"], f["embedded_chunks"]) if f["state"] in ("chunked", "embedded") else 0
        done = job["finished_at"] is not None and all(f["state"] in TERMINAL for f in files)
        out = ingest_pb2.IngestJob(job_id=str(job_id), root=job["root"], project=job["project"], created_at=_ts(job["created_at"]),
                                   finished_at=_ts(job["finished_at"]), done=done, counts=counts)
        if include_files:
            out.files.extend(ingest_pb2.FileStatus(
                path=f["path"], document_id=str(f["document_id"] or ""), state=STATES[f["state"]], reason=f["reason"],
                chunks=f["chunks"], chunks_embedded=min(f["chunks"], f["embedded_chunks"]), content_hash=f["content_hash"],
                warnings=f["warnings"]) for f in files)
        return out


class IngestHandlers:
    def __init__(self, ing: Ingestor) -> None:
        self.ing = ing

    async def IngestDocument(self, requests: Any, context: grpc.aio.ServicerContext) -> ingest_pb2.IngestDocumentResponse:
        header: ingest_pb2.DocumentHeader | None = None
        parts: list[bytes] = []
        size = 0
        limit = self.ing.rt.settings.ingest.max_bytes
        # A refusal may come mid-upload: the server interceptor reads the rest (bounded) before the status goes out.
        async for msg in requests:
            if msg.HasField("header"):
                if header is not None:
                    raise InvalidArgument("ingest: the header came twice; send it once, first")
                header = msg.header
                continue
            if header is None:
                raise InvalidArgument("ingest: the first message must be the document header")
            size += len(msg.data)
            if size > limit:
                raise InvalidArgument(f"ingest: document is over the configured limit of {limit} bytes (TESSERA_INGEST_MAX_BYTES)")
            parts.append(msg.data)
        if header is None or not header.path:
            raise InvalidArgument("ingest: a header with a path is required")
        no_nul(path=header.path, project=header.project, media_type=header.media_type, metadata=" ".join([*header.metadata, *header.metadata.values()]))
        refusal = secret_reason(Path(header.path))
        if refusal:
            raise PermissionDenied(f"ingest: {header.path}: {refusal}")
        if header.size_bytes and header.size_bytes != size:
            raise InvalidArgument(f"ingest: received {size} bytes but the header announced {header.size_bytes}; the upload was cut")
        threshold = None
        if header.dedup:
            threshold = header.dedup_threshold or self.ing.rt.settings.knowledge.dedup_threshold
            if not 0 < threshold <= 1:
                raise InvalidArgument(f"ingest: dedup_threshold is {header.dedup_threshold}; a cosine similarity in (0, 1]")
        job_id = await self.ing.new_job("", header.project, [header.path])
        dup = await self.ing.ingest_bytes(job_id, header.path, b"".join(parts), header.project, header.media_type,
                                          extra=dict(header.metadata), dedup=threshold)
        await self.ing.store.finish_job(job_id)
        job = await self.ing.job_proto(job_id, include_files=True)
        assert job is not None
        out = ingest_pb2.IngestDocumentResponse(job_id=str(job_id), file=job.files[0])
        if dup is not None:
            row = await self.ing.store.document(document_id=dup.document_id)
            out.duplicate, out.similarity = True, dup.similarity
            if row is not None:
                out.existing.CopyFrom(document_proto(row))
        return out

    async def IngestPath(self, request: ingest_pb2.IngestPathRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.IngestJob:
        if not request.path:
            raise InvalidArgument("ingest: path is required")
        no_nul(path=request.path, project=request.project, include=" ".join(request.include))
        path = Path(request.path).expanduser()
        if not path.is_absolute():
            raise InvalidArgument(f"ingest: {request.path!r} must be an absolute path")
        real = self.ing.roots.check(path)
        if not real.exists():
            raise NotFound(f"ingest: {request.path} does not exist")
        files = await asyncio.to_thread(lambda: list(walk(real, self.ing.roots, list(request.include))))
        job_id = await self.ing.new_job(str(real), request.project, [str(p) for p, _ in files])
        self.ing.spawn(self.ing.run_folder(job_id, real, request.project, files, request.keep_missing))
        job = await self.ing.job_proto(job_id, include_files=False)
        assert job is not None
        return job

    async def _job(self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.IngestJob:
        try:
            job_id = uuid.UUID(request.job_id)
        except ValueError:
            raise InvalidArgument(f"ingest: {request.job_id!r} is not a job id") from None
        job = await self.ing.job_proto(job_id, request.include_files)
        if job is None:
            raise NotFound(f"ingest: no job {request.job_id}")
        return job

    async def GetJob(self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.IngestJob:
        return await self._job(request, context)

    async def WatchJob(self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> Any:
        last = None
        while True:
            job = await self._job(request, context)
            if job != last:
                yield job
                last = job
            if job.done:
                return
            await asyncio.sleep(0.25)

    async def _document_row(self, document_id: str, path: str) -> dict[str, Any]:
        no_nul(document_id=document_id, path=path)
        key, value = ("id", document_id) if document_id else ("path", path)
        if not value:
            raise InvalidArgument("ingest: give a document_id or a path")
        row = None
        if key == "path":
            row = await self.ing.store.document(path=value)
        elif (doc_id := _uuid(value)) is not None:
            row = await self.ing.store.document(document_id=doc_id)
        if row is None:
            raise NotFound(f"ingest: no document with {key} {value!r}")
        return row

    async def GetDocument(self, request: ingest_pb2.GetDocumentRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.Document:
        return document_proto(await self._document_row(request.document_id, request.path))

    async def ReadDocument(self, request: ingest_pb2.ReadDocumentRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.DocumentText:
        no_nul(document_id=request.document_id, path=request.path)
        if request.path:
            self.ing.roots.check(request.path)  # a path outside the roots is refused before it is looked up
        row = await self._document_row(request.document_id, request.path)
        if request.max_lines > MAX_READ_LINES:
            raise InvalidArgument(f"ingest: max_lines is {request.max_lines}; at most {MAX_READ_LINES}")
        path = Path(row["path"])
        try:
            data = await asyncio.to_thread(self.ing.roots.read_bytes, path)
        except FileNotFoundError:
            raise NotFound(f"ingest: the file of document {row['id']} is gone ({path}); ingest its folder again") from None
        except OSError as exc:
            raise Unavailable(f"ingest: cannot read {path} ({exc.strerror or exc})") from None
        if row["media_type"] == "application/pdf":
            text = (await asyncio.to_thread(parse, data, str(path), row["media_type"], self.ing.rt.settings.ingest.max_bytes)).text
        else:
            text = data.decode("utf-8-sig", errors="replace")
        lines = text.splitlines()
        start = max(1, request.from_line or 1)
        count = request.max_lines or MAX_READ_LINES
        part = lines[start - 1:start - 1 + count]
        out = ingest_pb2.DocumentText(document=document_proto(row), from_line=start, lines=part, total_lines=len(lines),
                                      truncated=start - 1 + len(part) < len(lines))
        if request.include_chunks:
            out.chunks.extend(ingest_pb2.ChunkSpan(
                ord=c["ord"], line_start=c["line_start"], line_end=c["line_end"], heading_path=c["heading_path"], chars=c["chars"],
                embedded=c["embedded"], chunk_id=str(c["id"])) for c in await self.ing.store.chunk_spans(row["id"]))
        return out

    async def ListJobs(self, request: ingest_pb2.ListJobsRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.JobList:
        if request.limit > MAX_LIST_JOBS:
            raise InvalidArgument(f"ingest: limit is {request.limit}; at most {MAX_LIST_JOBS}")
        out = ingest_pb2.JobList()
        for job_id in await self.ing.store.recent_jobs(request.limit or 20):
            job = await self.ing.job_proto(job_id, request.include_files)
            if job is not None:  # deleted in between
                out.jobs.append(job)
        return out

    async def ListDocuments(self, request: ingest_pb2.ListDocumentsRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.DocumentList:
        if request.limit > 500:
            raise InvalidArgument(f"ingest: limit is {request.limit}; at most 500")
        no_nul(project=request.project, path_glob=request.path_glob)
        rows = await self.ing.store.documents(request.project, glob_to_like(request.path_glob), request.limit or 50)
        return ingest_pb2.DocumentList(documents=[document_proto(r) for r in rows])

    async def GetLibrary(self, request: ingest_pb2.GetLibraryRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.Library:
        lib = await self.ing.store.library()

        def counts(rows: list[tuple[str, int]]) -> list[ingest_pb2.LibraryCount]:
            return [ingest_pb2.LibraryCount(name=str(name), documents=int(n)) for name, n in rows]

        return ingest_pb2.Library(projects=counts(lib["projects"]), types=counts(lib["types"]), tags=counts(lib["tags"]),
                                  documents=lib["documents"], chunks=lib["chunks"], chunks_embedded=lib["chunks_embedded"])

    async def GetWatch(self, request: ingest_pb2.GetWatchRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.WatchStatus:
        roots = self.ing.rt.settings.knowledge.watch_roots
        out = ingest_pb2.WatchStatus(leader=await watch_leader(self.ing.rt))
        out.answered_by_leader = bool(out.leader) and out.leader == self.ing.rt.instance_id
        for root in roots:
            path = Path(root).expanduser()
            try:
                path = self.ing.roots.check(path)
            except Exception:  # noqa: BLE001 — shown with no documents; the watcher logged why it is not watched
                pass
            out.roots.append(ingest_pb2.WatchedRoot(path=str(path), documents=len(await self.ing.store.under_root(str(path)))))
        return out

    async def DeleteDocument(self, request: ingest_pb2.DeleteDocumentRequest,
                             context: grpc.aio.ServicerContext) -> ingest_pb2.DeleteDocumentResponse:
        try:
            doc_id = uuid.UUID(request.document_id)
        except ValueError:
            raise InvalidArgument(f"ingest: {request.document_id!r} is not a document id") from None
        generation = await self.ing.store.delete_document(doc_id)
        if generation:
            await bus.publish_event(self.ing.rt.nats, INDEX_SUBJECT, {"generation": generation})
        return ingest_pb2.DeleteDocumentResponse(deleted=bool(generation))


async def setup(rt: Runtime) -> None:
    await bus.ensure_stream(rt.nats.jetstream(), EMBED_STREAM)
    ing = Ingestor(rt)
    h = IngestHandlers(ing)
    rt.host.add_service(ingest_pb2, ingest_pb2_grpc, "IngestService", IngestDocument=h.IngestDocument, IngestPath=h.IngestPath,
                        GetJob=h.GetJob, WatchJob=h.WatchJob, GetDocument=h.GetDocument, DeleteDocument=h.DeleteDocument,
                        ReadDocument=h.ReadDocument, ListDocuments=h.ListDocuments, GetLibrary=h.GetLibrary,
                        ListJobs=h.ListJobs, GetWatch=h.GetWatch)

    async def drain(left: float) -> None:
        """Folder jobs in progress continue until the deadline; a file not reached stays 'queued' for the next run."""
        if ing.tasks:
            _done, pending = await asyncio.wait(list(ing.tasks), timeout=max(0.0, left))
            for task in pending:
                task.cancel()

    rt.host.on_drain(drain)
    upkeep = asyncio.create_task(ing.maintain_postings())
    if rt.settings.knowledge.watch_roots:
        watcher = Watcher(ing, rt.settings.knowledge.watch_roots, rt.settings.knowledge.watch_debounce_ms)
        watching = asyncio.create_task(watcher.run())

        async def stop_watching(left: float) -> None:
            watcher.stopping.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(watching, timeout=max(0.1, min(left, 3.0)))

        rt.host.on_drain(stop_watching)

    async def stop_upkeep() -> None:
        upkeep.cancel()

    rt.host.on_stop_accepting(stop_upkeep)


def run() -> None:
    main(SERVICE, NEEDS, setup)
