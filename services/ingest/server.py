"""Wires ingest to gRPC, PostgreSQL and NATS: the IngestService handlers, and what ingest hears.

One transaction per document: the document row, all its chunks (old ones deleted,
so search never sees half of a changed file) and the index generation. Embedding
work goes to the TESSERA_EMBED work queue after the commit; chunks whose message
was lost are re-queued by the embed service's sweeper. Embed's VECTORS_SUBJECT
events come back here: ingest owns documents, so it marks them embedded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
from nats.aio.msg import Msg

from services.ingest import pipeline, snapshots
from services.ingest.ingestor import Ingestor
from services.ingest.parse import parse
from services.ingest.paths import walk
from services.ingest.pipeline import document_proto
from services.ingest.store import Enrichment, glob_to_like
from services.ingest.watch import Watcher, watch_leader
from shared.contracts import EMBED_STREAM, VECTORS_QUEUE, VECTORS_SUBJECT, VectorsWritten
from shared.conversions import check_text, maybe_id, parse_id
from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from shared.gen.tessera.v1 import ingest_pb2, ingest_pb2_grpc
from shared.ops import snapshot
from shared.runtime import bus
from shared.runtime.roots import secret_reason
from shared.runtime.service import Runtime, main

SERVICE = "ingest"
NEEDS = ("postgres", "nats")
#: The most lines ReadDocument returns at once.
MAX_READ_LINES = 5000
MAX_ENRICH_IDS = 1000
MAX_LIST_JOBS = 200


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
        check_text("ingest", path=header.path, project=header.project, media_type=header.media_type,
                   metadata=[*header.metadata, *header.metadata.values()])
        refusal = secret_reason(Path(header.path))
        if refusal:
            raise PermissionDenied(f"ingest: {header.path}: {refusal}")
        if header.size_bytes and header.size_bytes != size:
            raise InvalidArgument(f"ingest: received {size} bytes but the header announced {header.size_bytes}; the upload was cut")
        threshold = None
        if header.dedup:
            threshold = header.dedup_threshold or self.ing.rt.settings.knowledge.dedup_threshold
            if not 0 < threshold <= 1:
                raise InvalidArgument(f"ingest: dedup_threshold is {header.dedup_threshold}; a share of the note's word triples in (0, 1]")
        job_id = await self.ing.new_job("", header.project, [header.path])
        dup = await self.ing.ingest_bytes(job_id, header.path, b"".join(parts), header.project, header.media_type,
                                          extra=dict(header.metadata), dedup_share=threshold)
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
        check_text("ingest", path=request.path, project=request.project, include=" ".join(request.include))
        path = Path(request.path).expanduser()
        if not path.is_absolute():
            raise InvalidArgument(f"ingest: {request.path!r} must be an absolute path")
        real = self.ing.roots.check(path)
        if not real.exists():
            raise NotFound(f"ingest: {request.path} does not exist")
        files = await asyncio.to_thread(lambda: list(walk(real, self.ing.roots, list(request.include))))
        job_id = await self.ing.new_job(str(real), request.project, [str(p) for p, _ in files])
        self.ing.defer_enrichment(job_id, len(files))
        self.ing.rt.host.spawn(self.ing.run_folder(job_id, real, request.project, files, request.keep_missing), name=f"ingest job {job_id}")
        job = await self.ing.job_proto(job_id, include_files=False)
        assert job is not None
        return job

    async def _job(self, request: ingest_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.IngestJob:
        job_id = parse_id(request.job_id, "job", "ingest")
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
        check_text("ingest", document_id=document_id, path=path)
        key, value = ("id", document_id) if document_id else ("path", path)
        if not value:
            raise InvalidArgument("ingest: give a document_id or a path")
        row = None
        if key == "path":
            row = await self.ing.store.document(path=value)
        elif (doc_id := maybe_id(value)) is not None:
            row = await self.ing.store.document(document_id=doc_id)
        if row is None:
            raise NotFound(f"ingest: no document with {key} {value!r}")
        return row

    async def GetDocument(self, request: ingest_pb2.GetDocumentRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.Document:
        return document_proto(await self._opened(await self._document_row(request.document_id, request.path)))

    async def _opened(self, row: dict[str, Any]) -> dict[str, Any]:
        """A document someone opened: if its enrichment was deferred, it is queued now."""
        if row.get("enrich_state") == "deferred":
            await self.ing.enrich_deferred([row["id"]])
            row = {**row, "enrich_state": "pending"}
        return row

    async def ReadDocument(self, request: ingest_pb2.ReadDocumentRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.DocumentText:
        check_text("ingest", document_id=request.document_id, path=request.path)
        if request.path:
            self.ing.roots.check(request.path)  # a path outside the roots is refused before it is looked up
        row = await self._document_row(request.document_id, request.path)
        if not request.export:
            row = await self._opened(row)
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
        check_text("ingest", project=request.project, path_glob=request.path_glob)
        rows = await self.ing.store.documents(request.project, glob_to_like(request.path_glob), request.limit or 50, request.offset)
        return ingest_pb2.DocumentList(documents=[document_proto(r) for r in rows])

    async def GetLibrary(self, request: ingest_pb2.GetLibraryRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.Library:
        lib = await self.ing.store.library()

        def counts(rows: list[tuple[str, int]]) -> list[ingest_pb2.LibraryCount]:
            return [ingest_pb2.LibraryCount(name=str(name), documents=int(n)) for name, n in rows]

        return ingest_pb2.Library(projects=counts(lib["projects"]), types=counts(lib["types"]), tags=counts(lib["tags"]),
                                  documents=lib["documents"], chunks=lib["chunks"], chunks_embedded=lib["chunks_embedded"],
                                  backlog=pipeline.backlog(**lib["backlog"]))

    async def GetWatch(self, request: ingest_pb2.GetWatchRequest, context: grpc.aio.ServicerContext) -> ingest_pb2.WatchStatus:
        roots = self.ing.rt.settings.knowledge.watch_roots
        out = ingest_pb2.WatchStatus(leader=await watch_leader(self.ing.rt))
        out.answered_by_leader = bool(out.leader) and out.leader == self.ing.rt.instance_id
        for root in roots:
            path = Path(root).expanduser()
            try:
                path = self.ing.roots.check(path)
            except (PermissionDenied, OSError, RuntimeError):  # shown with no documents; the watcher logged why it is not watched
                pass
            out.roots.append(ingest_pb2.WatchedRoot(path=str(path), documents=len(await self.ing.store.under_root(str(path)))))
        return out

    async def DeleteDocument(self, request: ingest_pb2.DeleteDocumentRequest,
                             context: grpc.aio.ServicerContext) -> ingest_pb2.DeleteDocumentResponse:
        doc_id = parse_id(request.document_id, "document", "ingest")
        row = await self.ing.store.document(document_id=doc_id)
        generation = await self.ing.store.delete_document(doc_id)
        if not generation or row is None:
            return ingest_pb2.DeleteDocumentResponse(deleted=False)
        await self.ing.index_changed(generation, f"deleted {doc_id}")
        removed = await asyncio.to_thread(self.ing.remove_capture_file, Path(row["path"]))
        await self.ing.announce_deleted(doc_id)
        return ingest_pb2.DeleteDocumentResponse(deleted=True, file_removed=removed)


    async def SetEnrichment(self, request: ingest_pb2.SetEnrichmentRequest,
                            context: grpc.aio.ServicerContext) -> ingest_pb2.SetEnrichmentResponse:
        doc_id = parse_id(request.document_id, "document", "ingest")
        e = request.enrichment
        if e.state not in ("enriched", "unenriched", "off"):
            raise InvalidArgument(f"ingest: enrichment state {e.state!r}; one of enriched, unenriched, off")
        check_text("ingest", kind=e.kind, title=e.title, summary=e.summary, reason=e.reason, tags=list(e.tags),
                   entities=[x.name + x.kind for x in e.entities])
        stored, generation = await self.ing.store.set_enrichment(doc_id, request.content_hash, Enrichment(
            e.state, e.reason, e.kind, e.title, e.summary, list(e.tags), [{"name": x.name, "kind": x.kind} for x in e.entities]))
        await self.ing.index_changed(generation, f"enriched {doc_id}")
        return ingest_pb2.SetEnrichmentResponse(stored=stored, index_generation=generation)


    async def EnrichDeferred(self, request: ingest_pb2.EnrichDeferredRequest,
                             context: grpc.aio.ServicerContext) -> ingest_pb2.EnrichDeferredResponse:
        if len(request.document_ids) > MAX_ENRICH_IDS:
            raise InvalidArgument(f"ingest: {len(request.document_ids)} document ids; at most {MAX_ENRICH_IDS}")
        if sum((bool(request.document_ids), bool(request.project), request.all)) != 1:
            raise InvalidArgument("ingest: give exactly one of document_ids, project or all")
        check_text("ingest", project=request.project)
        ids = [parse_id(d, "document", "ingest") for d in request.document_ids]
        queued = await self.ing.enrich_deferred(ids, request.project or None)
        return ingest_pb2.EnrichDeferredResponse(queued=queued)


async def setup(rt: Runtime) -> None:
    await bus.ensure_stream(rt.nats.jetstream(), EMBED_STREAM)
    await rt.foreground.listen()  # folder imports wait while an answer is generated
    rt.host.on_close(rt.foreground.close)
    ing = Ingestor(rt)
    h = IngestHandlers(ing)
    rt.host.add_service(ingest_pb2, ingest_pb2_grpc, "IngestService", IngestDocument=h.IngestDocument, IngestPath=h.IngestPath,
                        GetJob=h.GetJob, WatchJob=h.WatchJob, GetDocument=h.GetDocument, DeleteDocument=h.DeleteDocument,
                        ReadDocument=h.ReadDocument, ListDocuments=h.ListDocuments, GetLibrary=h.GetLibrary,
                        ListJobs=h.ListJobs, GetWatch=h.GetWatch, SetEnrichment=h.SetEnrichment, EnrichDeferred=h.EnrichDeferred)

    async def vectors(msg: Msg) -> None:
        bus.adopt_request_id(msg)
        try:
            event = VectorsWritten.from_bytes(msg.data)
        except (ValueError, KeyError, TypeError):
            return  # not an event of ours; nothing to mark
        rt.host.spawn(ing.vectors_written(event), name="vectors written")

    sub = await rt.nats.subscribe(VECTORS_SUBJECT, queue=VECTORS_QUEUE, cb=vectors)

    async def unsubscribe() -> None:
        await sub.unsubscribe()

    rt.host.on_stop_accepting(unsubscribe)
    rt.host.every(30.0, ing.maintain_postings, name="postings upkeep", first_s=0.0)
    rt.host.every(10.0, ing.reconcile_embedded, name="embedded reconcile")
    if (every_s := snapshot.period_s(rt.settings)) is not None:
        rt.host.every(snapshots.CHECK_S, snapshots.SnapshotSchedule(rt, every_s).tick, name="scheduled snapshots", first_s=5.0)
    if rt.settings.knowledge.watch_roots:
        watcher = Watcher(ing, rt.settings.knowledge.watch_roots, rt.settings.knowledge.watch_debounce_ms, rt.host.stopping)
        rt.host.spawn(watcher.run(), name="watcher", stop_within=3.0)


def run() -> None:
    main(SERVICE, NEEDS, setup)
