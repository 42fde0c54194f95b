"""Ingest's work, between the RPC handlers (server.py) and the store: one file, a large file a slice at a time,
a folder as a job; and what ingest does as the owner of documents when others tell it something (embed's
vectors, chat's enrichment). Each change to the index is announced once, on INDEX_SUBJECT, from ``index_changed``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import nats.errors
import numpy as np

from services.ingest import dedup, pipeline
from services.ingest.chunk import Chunk, ChunkConfig, chunk_text, default_tokenizer
from services.ingest.dedup_store import DedupStore
from services.ingest.large import read_large
from services.ingest.parse import Budget, ParseError, content_hash, media_type_for, parse
from services.ingest.pipeline import Duplicate, FileState, NewDocument
from services.ingest.postings import LexicalParams, PostingsStore
from services.ingest.store import Enrichment, IngestStore
from shared.contracts import DOCUMENT_DELETED_SUBJECT, EMBED_SUBJECT, ENRICH_SUBJECT, INDEX_SUBJECT, REVIEW_TYPE, IndexUpdated, VectorsWritten, embed_request
from shared.conversions import timestamp
from shared.errors import PermissionDenied
from shared.gen.tessera.v1 import embed_pb2, embed_pb2_grpc, ingest_pb2
from shared.runtime import bus
from shared.runtime.files import file_sha256
from shared.runtime.roots import AllowedRoots, ingest_roots
from shared.runtime.service import Runtime

#: Chunks whose postings are computed and written together, in a file read a slice at a time.
WRITE_CHUNKS = 128
#: Kinds of file read a slice at a time when they are over TESSERA_INGEST_BATCH_BYTES.
LARGE_MEDIA = frozenset({"text/markdown", "text/plain", "application/pdf"})
#: How long a document's embedding request may wait for JetStream's ack before the sweep is left to queue it.
EMBED_PUBLISH_TIMEOUT_S = 1.5
log = logging.getLogger("tessera.ingest")


def closest(mine: set[int], texts: Mapping[uuid.UUID, list[str]], measure: Callable[[set[int], set[int]], float]) -> tuple[uuid.UUID, float] | None:
    """The document whose chunk texts score highest against ``mine`` by ``measure`` (containment, Jaccard), and that score."""
    scored = [(measure(mine, dedup.shingles(t)), d) for d, t in texts.items() if t]
    best = max(scored, key=lambda x: (x[0], str(x[1])), default=None)
    return (best[1], best[0]) if best is not None else None

class Ingestor:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        # The data directory's imports/ (e.g. `tessera eval beir` corpora) is always readable.
        self.roots = AllowedRoots(ingest_roots(s), component="ingest", setting="TESSERA_INGEST_ROOTS")
        self.config = ChunkConfig(s.ingest.chunk_tokens, s.ingest.chunk_overlap)
        self.tokenizer = default_tokenizer()
        self.store = IngestStore(rt.db)
        self.dedup_store = DedupStore(rt.db)
        self.deferred_jobs: set[uuid.UUID] = set()  # folder imports whose enrichment waits (TESSERA_ENRICH_IMPORT_MAX)
        self.postings = PostingsStore(rt.db)
        self.lexical = LexicalParams(s.search.title_weight, s.search.bm25_k1, s.search.bm25_b)
        self.dedup_locks: dict[str, asyncio.Lock] = {}

    # -- announcing ---------------------------------------------------------------------------------------------------
    def remove_capture_file(self, path: Path) -> bool:
        """A deleted note's file, when Tessera wrote it (under the notes folder: a capture); an imported file is the user's."""
        settings = self.rt.settings
        notes = (Path(settings.gateway.notes_dir).expanduser() if settings.gateway.notes_dir else settings.path("notes")).resolve()
        try:
            if path.resolve().is_relative_to(notes) and path.is_file():
                path.unlink()
                return True
        except OSError as exc:
            log.warning("ingest: the deleted note's file stays: %s", exc)
        return False

    async def announce_deleted(self, doc_id: uuid.UUID) -> None:
        """Tell chat, which erases the note from the citations of stored answers."""
        try:
            await self.rt.nats.publish(DOCUMENT_DELETED_SUBJECT, json.dumps({"document_id": str(doc_id)}).encode(),
                                       headers=bus.message_headers())
        except nats.errors.Error as exc:
            log.warning("ingest: the deletion of %s was not announced (citations keep its title): %s", doc_id, exc)

    async def index_changed(self, generation: int, what: str) -> None:
        """Tell every search instance the index moved to ``generation`` (0: nothing changed, nothing said)."""
        if generation:
            await self.rt.nats.publish(INDEX_SUBJECT, IndexUpdated(generation, what).as_bytes(), headers=bus.message_headers())

    async def _queue_embedding(self, doc_id: uuid.UUID, job_id: uuid.UUID) -> None:
        try:
            await self.rt.nats.jetstream().publish(EMBED_SUBJECT, embed_request(doc_id, job_id), timeout=EMBED_PUBLISH_TIMEOUT_S,
                                                   headers=bus.message_headers())
        except (nats.errors.Error, TimeoutError) as exc:
            # NATS is away: the document is stored (the capture is safe), and embed's sweep queues its chunks again.
            log.warning("embedding request not queued; the embed sweep will queue it", extra={"document": str(doc_id), "error": str(exc)})

    # -- what others tell ingest ----------------------------------------------------------------------------------------
    async def vectors_written(self, event: VectorsWritten) -> None:
        """Embed wrote vectors: the finished documents are marked embedded, the new generation announced, then their files
        reach 'embedded' (so a client that sees the state finds the new generation already announced), and their
        enrichment is queued."""
        generation, enrich = await self.store.mark_embedded(event.done, advance=event.written > 0)
        await self.index_changed(generation, f"{event.written} vectors, {len(event.done)} documents embedded")
        if generation:
            await self.rt.nats.flush(timeout=2)
        if event.done:
            await self.store.files_embedded(event.done)
        js = self.rt.nats.jetstream()
        for doc_id in enrich:  # chat's enrichers take it from here (a lost message is found again by their sweep)
            try:
                await js.publish(ENRICH_SUBJECT, embed_request(doc_id), timeout=2.0, headers=bus.message_headers())
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("enrichment request not queued; the enrich sweep will find it", extra={"document": str(doc_id), "error": str(exc)})

    async def reconcile_embedded(self, age_s: float = 30.0) -> None:
        """Documents whose vectors are all written but whose VECTORS_SUBJECT event was lost are marked now."""
        if done := await self.store.embedded_unmarked(age_s):
            await self.vectors_written(VectorsWritten(0, tuple(done)))

    # -- the lexical index's upkeep -------------------------------------------------------------------------------------
    async def maintain_postings(self) -> None:
        """Index chunks written before the postings table existed, then keep the impacts near the live mean length."""
        while (n := await self.postings.backfill_postings(self.lexical)):
            log.info("ingest: indexed the postings of %d older documents", n)
        for project, drift in await self.postings.weight_drift():
            if abs(drift) > self.rt.settings.search.reweight_drift:
                rows = await self.postings.reweight(project, self.lexical)
                log.info("ingest: re-weighted %d postings of project %r (mean chunk length moved %+.0f%%)", rows, project, 100 * drift)

    # -- one document -----------------------------------------------------------------------------------------------------
    async def ingest_bytes(self, job_id: uuid.UUID, path: str, data: bytes, project: str, media_type: str = "",
                           root: str = "", extra: dict[str, str] | None = None, dedup_share: float | None = None) -> Duplicate | None:
        """Parse, chunk and store one file. With ``dedup_share``, a repeat of a note of the same project (that note
        holds at least this share of the file's word triples) is not stored: the note it repeats is returned. Any
        file that nearly duplicates a whole document is stored, with a warning that says so."""
        digest = content_hash(data)
        settings = self.rt.settings.ingest
        budget = Budget.for_size(len(data), settings.parse_base_s, settings.parse_s_per_mb)
        try:
            parsed = await asyncio.to_thread(parse, data, path, media_type, settings.max_bytes, budget)
        except ParseError as exc:
            await self.file_state(job_id, FileState(path, "failed", str(exc), content_hash=digest))
            return None
        project = project or parsed.project
        found = await self.store.lookup(project, path)
        doc_id = found[0] if found else pipeline.document_id(project, path)
        if not found and parsed.exported_id is not None:
            # a note `tessera export` wrote: it keeps its id, unless that document is here already (nothing is duplicated)
            if (here := await self.store.document(document_id=parsed.exported_id)) is not None:
                await self.file_state(job_id, FileState(path, "unchanged", f"an export of {here['path']}, which is here already; "
                                                        "not stored again", parsed.exported_id, content_hash=digest))
                return None
            doc_id = parsed.exported_id
        if found and found[1] == digest:
            await self._unchanged(job_id, FileState(path, "unchanged", "", doc_id, content_hash=digest, warnings=parsed.warnings), found[2])
            return None
        source = data.decode("utf-8-sig") if parsed.media_type != "application/pdf" else parsed.text
        try:
            chunks = await asyncio.to_thread(chunk_text, source, parsed.body_offset, markdown=parsed.media_type == "text/markdown",
                                             config=self.config, tokenizer=self.tokenizer, budget=budget)
        except ParseError as exc:
            await self.file_state(job_id, FileState(path, "failed", str(exc), content_hash=digest))
            return None
        doc = pipeline.new_document(doc_id, parsed, chunks, project=project, path=path, digest=digest, root=root, size=len(data),
                                    extra=extra or {}, enrich=self.enrich_state(project, parsed.type, job_id))
        mine = await asyncio.to_thread(dedup.shingles, [c.text for c in doc.chunks])
        doc.shingle_bands = dedup.bands(mine) if parsed.type != REVIEW_TYPE else []
        given = None
        if (g := parsed.given) is not None:  # an exported note's enrichment comes back with it (the file's, not a model's)
            given = Enrichment("enriched", "", g.kind, "", g.summary, g.tags, g.entities)
        if dedup_share is None or parsed.type == REVIEW_TYPE:
            await self._store(job_id, doc, mine, given)
            return None
        return await self._store_unless_duplicate(job_id, doc, mine, dedup_share, given)

    async def _store_unless_duplicate(self, job_id: uuid.UUID, doc: NewDocument, mine: set[int], threshold: float,
                                      given: Enrichment | None = None) -> Duplicate | None:
        vectors = await self.chunk_vectors(doc)  # before the lock: the critical section is database work only
        # Check and store as one step, so concurrent twins find each other: one waiter per project in this process
        # (a pooled connection each would starve the pool), and PostgreSQL's advisory lock across instances.
        async with self.dedup_locks.setdefault(doc.project, asyncio.Lock()), self.dedup_store.dedup_lock(doc.project):
            dup = await self.find_duplicate(doc, mine, vectors, threshold)
            if dup is not None:
                row = await self.store.document(document_id=dup.document_id)
                reason = (f"a repeat of {row['path'] if row else dup.document_id} ({dup.similarity:.0%} of its word triples are there);"
                          " not stored")
                await self.file_state(job_id, FileState(doc.path, "unchanged", reason, dup.document_id, content_hash=doc.content_hash))
                return dup
            await self._store(job_id, doc, mine, given)
        return None

    async def _store(self, job_id: uuid.UUID, doc: NewDocument, mine: set[int] | None = None, given: Enrichment | None = None) -> None:
        """Store a document and queue its embedding; ``given``: its enrichment, stored first (so it is never queued)."""
        if mine and (near := await self.near_duplicate(doc, mine)) is not None:
            row = await self.store.document(document_id=near[0])
            doc.warnings = [*doc.warnings, f"a near-duplicate of {row['path'] if row else near[0]} ({near[1]:.0%} of their word triples"
                                           " are shared); stored all the same"]
        generation = await self.store.replace_document(job_id, doc, self.lexical)
        if given is not None:
            generation = (await self.store.set_enrichment(doc.id, doc.content_hash, given))[1] or generation
        await self._queue_embedding(doc.id, job_id)
        await self.index_changed(generation, f"stored {doc.id}")

    def enrich_state(self, project: str, doc_type: str, job_id: uuid.UUID | None = None) -> str:
        return pipeline.enrich_state(self.rt.settings.knowledge.enrich, project, doc_type, deferred=job_id in self.deferred_jobs)

    def defer_enrichment(self, job_id: uuid.UUID, files: int) -> bool:
        """A folder import larger than TESSERA_ENRICH_IMPORT_MAX: its documents wait to be opened, cited or asked for."""
        limit = self.rt.settings.knowledge.enrich_import_max
        if 0 < limit < files:
            self.deferred_jobs.add(job_id)
        return job_id in self.deferred_jobs

    async def enrich_deferred(self, doc_ids: Sequence[uuid.UUID] = (), project: str | None = None) -> int:
        """Deferred documents (these, or a project's, or all with project ''), pending again; the embedded ones are queued
        for enrichment now, the others when their vectors are written. How many."""
        promoted = await self.store.promote_enrichment(doc_ids, project)
        js = self.rt.nats.jetstream()
        for doc_id, embedded in promoted:
            if embedded:
                try:
                    await js.publish(ENRICH_SUBJECT, embed_request(doc_id), timeout=2.0, headers=bus.message_headers())
                except (nats.errors.Error, TimeoutError) as exc:
                    log.warning("enrichment request not queued; the enrich sweep will find it", extra={"document": str(doc_id), "error": str(exc)})
        return len(promoted)

    async def chunk_vectors(self, doc: NewDocument) -> list[np.ndarray]:
        """The new chunks' vectors (as embed will store them: embed keeps them in its cache, so its worker does not
        encode them again), for the near-duplicate check; none when embed is away."""
        if not doc.chunks:
            return []
        try:
            stub = await self.rt.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
            reply = await stub.Embed(embed_pb2.EmbedRequest(texts=pipeline.dedup_texts(doc), purpose=embed_pb2.EMBED_PURPOSE_DOCUMENT))
        except grpc.aio.AioRpcError as exc:
            # The capture is not lost for want of a vector: it is stored, and only exact twins are looked for.
            log.warning("dedup: the embed service did not answer; only identical notes were looked for", extra={"code": exc.code().name})
            return []
        return [np.asarray(v.values, dtype=np.float32) for v in reply.vectors]

    async def find_duplicate(self, doc: NewDocument, mine: set[int], vectors: list[np.ndarray], threshold: float) -> Duplicate | None:
        """The same body in the project, or the note that holds at least ``threshold`` of the new text's word triples
        (dedup.py). The notes compared are those of the chunks nearest the new ones and those sharing a MinHash band."""
        same = await self.dedup_store.same_body(doc.project, doc.body_hash, doc.id)
        if same is not None:
            return Duplicate(same, 1.0)
        if not mine:
            return None
        spans = await self._candidate_spans(doc, vectors)
        best = closest(mine, await self.dedup_store.chunk_texts(spans), dedup.containment)
        return Duplicate(best[0], round(best[1], 4)) if best is not None and best[1] >= threshold else None

    async def _candidate_spans(self, doc: NewDocument, vectors: list[np.ndarray]) -> dict[uuid.UUID, tuple[int, int]]:
        """Which chunks of which notes to compare: around each nearest chunk, as many chunks either side as the new
        document has (a copied passage can straddle chunk boundaries); the first ``DEDUP_TEXTS`` of a note that
        shares a band."""
        reach = min(len(doc.chunks), pipeline.DEDUP_TEXTS)
        spans: dict[uuid.UUID, tuple[int, int]] = {}
        for doc_id, ord_ in await self.dedup_store.nearest_chunks(doc.project, vectors, doc.id) if vectors else []:
            lo, hi = spans.get(doc_id, (ord_, ord_))
            spans[doc_id] = (min(lo, ord_ - reach), max(hi, ord_ + reach))
        for doc_id in await self.dedup_store.sharing_bands(doc.project, doc.shingle_bands, doc.id):
            spans[doc_id] = (0, max(spans.get(doc_id, (0, 0))[1], pipeline.DEDUP_TEXTS))
        return spans

    async def near_duplicate(self, doc: NewDocument, mine: set[int]) -> tuple[uuid.UUID, float] | None:
        """A document of the project that shares at least ``knowledge.near_duplicate`` of its word triples with ``doc``
        (Jaccard), and that share: reported on the new file, which is stored all the same."""
        found = await self.dedup_store.sharing_bands(doc.project, doc.shingle_bands, doc.id, limit=3)
        if not found:
            return None
        best = closest(mine, await self.dedup_store.chunk_texts({d: (0, 1 << 30) for d in found}), dedup.jaccard)
        return best if best is not None and best[1] >= self.rt.settings.knowledge.near_duplicate else None

    async def ingest_large(self, job_id: uuid.UUID, path: Path, size: int, project: str, root: str, opened: Path | None = None) -> None:
        """A file over TESSERA_INGEST_BATCH_BYTES: hashed, read, chunked and stored a slice at a time (large.py).
        ``opened`` is where to read it (an open descriptor's /proc path, so the file checked is the file read);
        ``path`` is what it is called."""
        source = opened or path
        budget = Budget.for_size(size, self.rt.settings.ingest.parse_base_s, self.rt.settings.ingest.parse_s_per_mb)
        digest = await asyncio.to_thread(file_sha256, source)  # the same value as content_hash of its bytes
        head, slices = await asyncio.to_thread(read_large, source, self.rt.settings.ingest.batch_bytes, str(path))
        project = project or head.project
        found = await self.store.lookup(project, str(path))
        doc_id = found[0] if found else pipeline.document_id(project, str(path))
        if found and found[1] == digest:
            await self._unchanged(job_id, FileState(str(path), "unchanged", "", doc_id, content_hash=digest, warnings=head.warnings), found[2])
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
            out = pipeline.in_file(chunks, piece, done)
            done += len(out)
            return out

        async def batches() -> AsyncIterator[list[Chunk]]:
            while (batch := await asyncio.to_thread(next_batch)) is not None:
                for i in range(0, len(batch), WRITE_CHUNKS):  # postings (a term counter per chunk) for a few chunks at a time
                    yield batch[i:i + WRITE_CHUNKS]
                del batch  # the slice's chunks go before the next slice is read

        doc = pipeline.new_document(doc_id, head, [], project=project, path=str(path), digest=digest, root=root, size=size, extra={},
                                    enrich=self.enrich_state(project, head.type, job_id))
        doc.body_hash = ""
        generation, _ = await self.store.replace_document_in_slices(job_id, doc, batches(), self.lexical)
        await self._queue_embedding(doc_id, job_id)
        await self.index_changed(generation, f"stored {doc_id}")

    async def _unchanged(self, job_id: uuid.UUID, state: FileState, embedded: bool) -> None:
        """A file stored before with the same content. If an earlier import stopped before its vectors were all written
        (killed, or its queue message lost), the file waits for them like a new one and its document is queued again:
        embed encodes only the chunks still without a vector, so a resumed import writes each chunk once."""
        if embedded:
            await self.file_state(job_id, state)
        elif await self.store.wait_for_vectors(job_id, state) and state.document_id is not None:
            await self._queue_embedding(state.document_id, job_id)

    async def file_state(self, job_id: uuid.UUID, state: FileState) -> None:
        await self.store.file_state(job_id, state)

    # -- jobs -------------------------------------------------------------------------------------------------------------
    async def new_job(self, root: str, project: str, files: list[str]) -> uuid.UUID:
        return await self.store.new_job(root, project, files)

    async def run_folder(self, job_id: uuid.UUID, root: Path, project: str, files: list[tuple[Path, str | None]],
                         keep_missing: bool) -> None:
        seen: set[str] = set()
        for path, refusal in files:
            seen.add(str(path))
            if refusal:
                await self.file_state(job_id, FileState(str(path), "failed", refusal))
                continue
            # parsing, chunking and indexing a file waits while an answer is generated (at most a few seconds a file)
            if (cap := self.rt.settings.embed.yield_chat_s) > 0:
                await self.rt.foreground.yield_to_people("ingest", {"chat": cap})
            await self._one_file(job_id, root, project, path)
        if not keep_missing and root.is_dir():
            gone, generation = await self.store.remove_missing(job_id, str(root), project, seen)
            await self.index_changed(generation, f"{gone} documents deleted")
        await self.store.finish_job(job_id)
        self.deferred_jobs.discard(job_id)

    async def _one_file(self, job_id: uuid.UUID, root: Path, project: str, path: Path) -> None:
        limit = self.rt.settings.ingest.max_bytes
        try:
            # What was opened is checked (roots, secrets, no symlink swapped in); every later read goes through
            # the open descriptor, never the name again.
            with self.roots.open(path) as f:
                size = os.fstat(f.fileno()).st_size
                if size > limit:
                    raise ParseError(f"{size} bytes is over the configured limit of {limit} bytes (TESSERA_INGEST_MAX_BYTES)")
                if size > self.rt.settings.ingest.batch_bytes and media_type_for(str(path), "") in LARGE_MEDIA:
                    await self.ingest_large(job_id, path, size, project, root=str(root), opened=Path(f"/proc/self/fd/{f.fileno()}"))
                    return
                data = await asyncio.to_thread(f.read)
            await self.ingest_bytes(job_id, str(path), data, project, root=str(root))
        except PermissionDenied as exc:
            await self.file_state(job_id, FileState(str(path), "failed", exc.message))
        except (ParseError, OSError) as exc:
            reason = str(exc) if isinstance(exc, ParseError) else f"cannot read the file ({exc.strerror or exc})"
            await self.file_state(job_id, FileState(str(path), "failed", reason))
        except Exception as exc:  # boundary: one file of a folder; it fails alone, with the reason, and the job goes on
            log.exception("ingest failed", extra={"path": str(path)})
            await self.file_state(job_id, FileState(str(path), "failed", f"internal error: {type(exc).__name__}: {exc}"))

    async def job_proto(self, job_id: uuid.UUID, include_files: bool) -> ingest_pb2.IngestJob | None:
        """The job with its counts, and each file's state when ``include_files`` (without, the cost of a watched job's
        update does not grow with its files)."""
        found = await self.store.job(job_id, by_state=not include_files)
        if found is None:
            return None
        job, rows = found  # the files' rows, or their counts by state
        out = ingest_pb2.IngestJob(job_id=str(job_id), root=job["root"], project=job["project"], created_at=timestamp(job["created_at"]),
                                   finished_at=timestamp(job["finished_at"]), done=pipeline.job_done(job["finished_at"] is not None, rows),
                                   counts=pipeline.job_counts(rows) if include_files else pipeline.state_counts(rows))
        if include_files:
            out.files.extend(file_proto(f) for f in rows)
        return out


def file_proto(f: dict[str, Any]) -> ingest_pb2.FileStatus:
    return ingest_pb2.FileStatus(path=f["path"], document_id=str(f["document_id"] or ""), state=pipeline.STATES[f["state"]],
                                 reason=f["reason"], chunks=f["chunks"], chunks_embedded=min(f["chunks"], f["embedded_chunks"]),
                                 content_hash=f["content_hash"], warnings=f["warnings"])
