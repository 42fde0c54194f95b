"""The Python client of the mesh: one object, typed replies and events, typed errors.

    async with Client() as tessera:
        hits = await tessera.search("descale a kettle", project="home")
        async for event in await tessera.chat("How do I descale a kettle?"):
            ...  # Token, Citation, then Done

Every failed call raises the StatusError of its status (shared.errors:
InvalidArgument, NotFound, ResourceExhausted with retry_after, Unavailable, ...).
Streams (chat, resample) run over the QUIC data plane by default and over the
gRPC stream with ``transport="grpc"``; both yield the same typed events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from nats.aio.client import Client as NATS

from shared.client._rpc import EventStream, open_stream, rpc_errors
from shared.client.events import ChatEvent, Citation, Done, Step, TensorEvent, Token, chat_event, tensor_event
from shared.client.tensor import requests_for
from shared.errors import InvalidArgument, Unavailable
from shared.gen.tessera.v1 import (
    chat_pb2,
    chat_pb2_grpc,
    common_pb2,
    embed_pb2,
    embed_pb2_grpc,
    gateway_pb2,
    gateway_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    tensor_pb2,
    tensor_pb2_grpc,
)
from shared.quic import QuicClient
from shared.runtime.channels import Channels, call_metadata
from shared.runtime.config import Settings, load_settings

Transport = Literal["quic", "grpc"]
MODES = {"hybrid": search_pb2.SEARCH_MODE_HYBRID, "lexical": search_pb2.SEARCH_MODE_LEXICAL, "vector": search_pb2.SEARCH_MODE_VECTOR}
#: Upload frames of IngestDocument.
UPLOAD_FRAME = 256 * 1024
#: A streamed answer may take this long in all (queue, retrieval, prefill and generation).
CHAT_TIMEOUT_S = 600.0
TENSOR_TIMEOUT_S = 3600.0
#: The gRPC stub class of each service.
STUBS: dict[str, Any] = {"search": search_pb2_grpc.SearchServiceStub, "ingest": ingest_pb2_grpc.IngestServiceStub,
                         "chat": chat_pb2_grpc.ChatServiceStub, "embed": embed_pb2_grpc.EmbedServiceStub,
                         "tensor": tensor_pb2_grpc.TensorServiceStub, "gateway": gateway_pb2_grpc.GatewayServiceStub,
                         "scheduler": scheduler_pb2_grpc.SchedulerServiceStub}


class Answer:
    """A whole answer (``Client.ask``): its text, the citations in order, and the Done event."""

    def __init__(self) -> None:
        self.text = ""
        self.citations: list[Citation] = []
        self.steps: list[Step] = []  # research mode's
        self.done: Done | None = None

    def add(self, event: ChatEvent) -> None:
        if isinstance(event, Token):
            self.text += event.text
        elif isinstance(event, Citation):
            self.citations.append(event)
        elif isinstance(event, Step):
            self.steps.append(event)
        else:
            self.done = event
            if event.text:  # the stored answer differs from the tokens: its unsupported sentences were left out
                self.text = event.text


def filters(project: str = "", types: Iterable[str] = (), tags: Iterable[str] = ()) -> common_pb2.Filters:
    return common_pb2.Filters(project=project, types=list(types), tags=list(tags))


class Client:
    """Calls into a running mesh. Addresses come from ``settings`` (static, or NATS discovery with ``nc``)."""

    def __init__(self, settings: Settings | None = None, *, transport: Transport = "quic", timeout_s: float = 30.0,
                 nc: NATS | None = None) -> None:
        self.settings = settings or load_settings()
        self.transport: Transport = transport
        self.timeout_s = timeout_s
        self.channels = Channels(self.settings, nc)
        self._quic: QuicClient | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._quic is not None:
            await self._quic.close()
            self._quic = None
        await self.channels.close()

    def _data_plane(self, transport: Transport | None) -> QuicClient | None:
        if (transport or self.transport) == "grpc":
            return None
        if self._quic is None:
            self._quic = QuicClient(self.settings)
        return self._quic

    async def _stub(self, service: str) -> Any:
        return await self.channels.stub(service, STUBS[service])

    async def call(self, service: str, method: str, request: Any, timeout_s: float | None = None) -> Any:
        """One unary call; its failure raises the StatusError of its status."""
        with rpc_errors(service):
            stub = await self._stub(service)
            return await getattr(stub, method)(request, timeout=timeout_s or self.timeout_s)

    # -- search -------------------------------------------------------------------------------------------------------

    async def search(self, query: str | search_pb2.SearchRequest, *, project: str = "", types: Iterable[str] = (),
                     tags: Iterable[str] = (), mode: str = "hybrid", top_k: int = 10, bypass_cache: bool = False,
                     explain: bool = False, recency_half_life_days: float = 0.0) -> search_pb2.SearchResponse:
        """Hybrid (or lexical, or vector) search: hits with the fused score, each signal's score and rank, and the source.

        With ``explain``, each signal also carries its contribution to the fused score, and the
        lexical one its matched terms with their weights."""
        if isinstance(query, search_pb2.SearchRequest):
            request = query
        else:
            if mode not in MODES:
                raise InvalidArgument(f"search: mode {mode!r} is not one of {', '.join(sorted(MODES))}")
            request = search_pb2.SearchRequest(query=query, top_k=top_k, mode=MODES[mode], bypass_cache=bypass_cache,
                                               filters=filters(project, types, tags), explain=explain,
                                               recency_half_life_days=recency_half_life_days)
        reply: search_pb2.SearchResponse = await self.call("search", "Search", request)
        return reply

    async def map(self, *, project: str = "", rebuild: bool = False, examples: int = 3, since_days: float = 7.0,
                  points: bool = False) -> search_pb2.MapResponse:
        """Topic clusters with their sizes, names, newest members and closest documents, merge suggestions and each
        project's clustering quality; with ``points``, every clustered document's place on the map."""
        request = search_pb2.MapRequest(project=project, rebuild=rebuild, examples=examples, since_days=since_days, points=points)
        reply: search_pb2.MapResponse = await self.call("search", "Map", request, timeout_s=300 if rebuild else None)
        return reply

    async def stale(self, *, project: str = "", days: int = 0, limit: int = 50) -> search_pb2.StaleResponse:
        """Notes nobody changed or found in a search for ``days`` days (0: TESSERA_STALE_DAYS)."""
        reply: search_pb2.StaleResponse = await self.call("search", "Stale", search_pb2.StaleRequest(project=project, days=days, limit=limit))
        return reply

    async def review(self, *, since_days: float = 7.0, project: str = "", claim: str = "") -> search_pb2.ReviewResponse:
        """The review of the last ``since_days`` days as markdown (not saved: see :meth:`capture` with type ``review``)."""
        request = search_pb2.ReviewRequest(since_days=since_days, project=project, claim=claim)
        reply: search_pb2.ReviewResponse = await self.call("search", "Review", request, timeout_s=120)
        return reply

    async def related(self, document_id: str = "", *, path: str = "", limit: int = 10, min_score: float = 0.0) -> search_pb2.RelatedResponse:
        """Documents linked to one (by id or path), best first."""
        request = search_pb2.RelatedRequest(limit=limit, min_score=min_score)
        if document_id:
            request.document_id = document_id
        else:
            request.path = path
        reply: search_pb2.RelatedResponse = await self.call("search", "Related", request)
        return reply

    # -- ingest -------------------------------------------------------------------------------------------------------

    async def ingest_path(self, path: str | Path, *, project: str = "", include: Iterable[str] = (),
                          keep_missing: bool = False) -> ingest_pb2.IngestJob:
        """Start ingesting a file or folder under the allowed roots; returns the job (follow it with watch_job)."""
        request = ingest_pb2.IngestPathRequest(path=str(Path(path).expanduser().resolve()), project=project, include=list(include),
                                               keep_missing=keep_missing)
        reply: ingest_pb2.IngestJob = await self.call("ingest", "IngestPath", request, timeout_s=60)
        return reply

    async def ingest(self, path: str | Path, *, project: str = "", include: Iterable[str] = (), keep_missing: bool = False,
                     on_progress: Callable[[ingest_pb2.IngestJob], None] | None = None) -> ingest_pb2.IngestJob:
        """Ingest a file or folder and wait until every file is done (embedded, unchanged, removed or failed);
        ``on_progress`` sees the job each time it changes. Returns the finished job with every file's state."""
        job = started = await self.ingest_path(path, project=project, include=include, keep_missing=keep_missing)
        if on_progress is not None:
            on_progress(job)
        # Counts while it runs (their cost does not grow with the job), every file's state once it is done.
        async for job in self.watch_job(started.job_id, include_files=False):
            if on_progress is not None:
                on_progress(job)
        return await self.job(started.job_id, include_files=True)

    async def watch_job(self, job_id: str, *, include_files: bool = True, timeout_s: float = 24 * 3600) -> AsyncIterator[ingest_pb2.IngestJob]:
        """The job's state as it changes, until it is done."""
        with rpc_errors("ingest"):
            stub = await self._stub("ingest")
            async for job in stub.WatchJob(ingest_pb2.GetJobRequest(job_id=job_id, include_files=include_files), timeout=timeout_s):
                yield job

    async def job(self, job_id: str, *, include_files: bool = True) -> ingest_pb2.IngestJob:
        reply: ingest_pb2.IngestJob = await self.call("ingest", "GetJob", ingest_pb2.GetJobRequest(job_id=job_id, include_files=include_files))
        return reply

    async def document(self, document_id: str = "", *, path: str = "") -> ingest_pb2.Document:
        request = ingest_pb2.GetDocumentRequest(document_id=document_id) if document_id else ingest_pb2.GetDocumentRequest(path=path)
        reply: ingest_pb2.Document = await self.call("ingest", "GetDocument", request)
        return reply

    async def read_document(self, document_id: str = "", *, path: str = "", from_line: int = 0,
                            max_lines: int = 0, chunks: bool = False, export: bool = False) -> ingest_pb2.DocumentText:
        """A document's lines (1-based ``from_line``), read from its file by ingest, which reads only under its roots;
        with ``chunks``, also its chunks with their line ranges (what the index sees). ``export``: a tool's read, which
        does not count as opening the document (its deferred enrichment stays deferred)."""
        request = ingest_pb2.ReadDocumentRequest(from_line=from_line, max_lines=max_lines, include_chunks=chunks, export=export)
        if document_id:
            request.document_id = document_id
        else:
            request.path = path
        reply: ingest_pb2.DocumentText = await self.call("ingest", "ReadDocument", request)
        return reply

    async def documents(self, *, project: str = "", path_glob: str = "", limit: int = 50, offset: int = 0) -> ingest_pb2.DocumentList:
        """Documents, most recently changed first (``offset`` pages through them); ``path_glob`` is an fnmatch pattern
        (``*``, ``?``) on the path."""
        request = ingest_pb2.ListDocumentsRequest(project=project, path_glob=path_glob, limit=limit, offset=offset)
        reply: ingest_pb2.DocumentList = await self.call("ingest", "ListDocuments", request)
        return reply

    async def jobs(self, *, limit: int = 20, include_files: bool = True) -> ingest_pb2.JobList:
        """Recent ingest jobs, newest first, with every file's state and reason."""
        request = ingest_pb2.ListJobsRequest(limit=limit, include_files=include_files)
        reply: ingest_pb2.JobList = await self.call("ingest", "ListJobs", request)
        return reply

    async def library(self) -> ingest_pb2.Library:
        """Projects, types and tags with their document counts, and the size of the index."""
        reply: ingest_pb2.Library = await self.call("ingest", "GetLibrary", ingest_pb2.GetLibraryRequest())
        return reply

    async def watch_status(self) -> ingest_pb2.WatchStatus:
        """The folders TESSERA_WATCH_ROOTS keeps in sync, and the ingest instance that watches them."""
        reply: ingest_pb2.WatchStatus = await self.call("ingest", "GetWatch", ingest_pb2.GetWatchRequest())
        return reply

    async def delete_document(self, document_id: str) -> ingest_pb2.DeleteDocumentResponse:
        request = ingest_pb2.DeleteDocumentRequest(document_id=document_id)
        reply: ingest_pb2.DeleteDocumentResponse = await self.call("ingest", "DeleteDocument", request)
        return reply

    async def upload(self, path: str, data: bytes, *, project: str = "", media_type: str = "",
                     metadata: Mapping[str, str] | None = None, dedup: bool = False,
                     dedup_threshold: float = 0.0) -> ingest_pb2.IngestDocumentResponse:
        """Ingest a document's bytes under the name ``path`` (streamed in frames); returns its file state and job.

        With ``dedup``, a repeat of a note of the same project (dedup.py) is not stored: the reply says ``duplicate`` and
        carries the existing note."""
        header = ingest_pb2.DocumentHeader(path=path, project=project, media_type=media_type, size_bytes=len(data),
                                           metadata=dict(metadata or {}), dedup=dedup, dedup_threshold=dedup_threshold)

        async def frames() -> AsyncIterator[ingest_pb2.IngestDocumentChunk]:
            yield ingest_pb2.IngestDocumentChunk(header=header)
            for i in range(0, len(data), UPLOAD_FRAME):
                yield ingest_pb2.IngestDocumentChunk(data=data[i:i + UPLOAD_FRAME])

        with rpc_errors("ingest"):
            stub = await self._stub("ingest")
            reply: ingest_pb2.IngestDocumentResponse = await stub.IngestDocument(frames(), timeout=max(self.timeout_s, 120.0),
                                                                                 metadata=call_metadata())
        return reply

    async def capture(self, title: str, body: str, *, tags: Iterable[str] = (), project: str = "",
                      type: str = "note", force: bool = False) -> gateway_pb2.CaptureNoteResponse:
        """Write a markdown note into the notes folder (through the gateway) and index it. A repeat of (any part of) a note
        of the same project is not stored (``duplicate`` is set and the ids are the existing note's) unless ``force``."""
        request = gateway_pb2.CaptureNoteRequest(title=title, body=body, tags=list(tags), project=project, type=type, force=force)
        reply: gateway_pb2.CaptureNoteResponse = await self.call("gateway", "CaptureNote", request, timeout_s=120)
        return reply

    async def edit_note(self, document_id: str, *, title: str | None = None, body: str | None = None,
                        tags: Iterable[str] | None = None, type: str | None = None, content_hash: str = "") -> gateway_pb2.EditNoteResponse:
        """Change a note Tessera wrote (a capture), through the gateway: what is None stays. FailedPrecondition for an
        imported file (edit it where it lies) or, with ``content_hash`` (the note's as it was read), a note changed since."""
        request = gateway_pb2.EditNoteRequest(document_id=document_id, title=title, body=body, type=type, content_hash=content_hash,
                                              tags=list(tags or []), set_tags=tags is not None)
        reply: gateway_pb2.EditNoteResponse = await self.call("gateway", "EditNote", request, timeout_s=120)
        return reply

    # -- chat ---------------------------------------------------------------------------------------------------------

    async def chat(self, question: str | chat_pb2.ChatRequest, *, conversation_id: str = "", project: str = "", rag: bool = True,
                   sources: int = 0, max_tokens: int = 0, temperature: float = 0.0, purpose: str = "", mode: str = "",
                   transport: Transport | None = None) -> EventStream[ChatEvent]:
        """An admitted answer: iterate it for Token, Citation and Done events (and Step, with ``mode="research"``: the
        model plans searches, each is run, and one answer cites what they found); ``cancel()`` stops generation.

        ``purpose``: who a new conversation is for, "user" (the default), "eval" or "bench"; lists show "user" unless asked.
        Refusals (bad input, an unknown conversation, a full queue) raise before the stream opens."""
        if isinstance(question, chat_pb2.ChatRequest):
            request = question
        else:
            request = chat_pb2.ChatRequest(conversation_id=conversation_id, rag=rag, top_k_sources=sources, max_tokens=max_tokens,
                                           temperature=temperature, filters=filters(project), purpose=purpose, mode=mode,
                                           messages=[chat_pb2.ChatMessage(role="user", content=question)])
        stub = await self._stub("chat")
        frames, admitted = await open_stream(
            "chat", chat_pb2.ChatEvent, self._data_plane(transport),
            lambda: stub.StartChat(request, timeout=CHAT_TIMEOUT_S), lambda: stub.Chat(request, timeout=CHAT_TIMEOUT_S))
        return EventStream(frames, chat_event, "chat", admitted)

    async def ask(self, question: str | chat_pb2.ChatRequest, **options: Any) -> Answer:
        """A whole answer, not streamed; Unavailable when the stream ends before its Done event."""
        answer = Answer()
        async for event in await self.chat(question, **options):
            answer.add(event)
        if answer.done is None:
            raise Unavailable("chat: the answer ended early")
        return answer

    async def conversations(self, limit: int = 50, purpose: str = "") -> chat_pb2.ListConversationsResponse:
        """The latest conversations of one purpose ("user" when empty; "eval", "bench", or "all")."""
        request = chat_pb2.ListConversationsRequest(limit=limit, purpose=purpose)
        reply: chat_pb2.ListConversationsResponse = await self.call("chat", "ListConversations", request)
        return reply

    async def rename_conversation(self, conversation_id: str, title: str) -> chat_pb2.Conversation:
        request = chat_pb2.RenameConversationRequest(conversation_id=conversation_id, title=title)
        reply: chat_pb2.Conversation = await self.call("chat", "RenameConversation", request)
        return reply

    async def delete_conversation(self, conversation_id: str) -> int:
        """Delete a conversation with its messages; how many messages went."""
        request = chat_pb2.DeleteConversationRequest(conversation_id=conversation_id)
        reply: chat_pb2.DeleteConversationResponse = await self.call("chat", "DeleteConversation", request)
        return reply.messages

    async def conversation(self, conversation_id: str) -> chat_pb2.Conversation:
        request = chat_pb2.GetConversationRequest(conversation_id=conversation_id)
        reply: chat_pb2.Conversation = await self.call("chat", "GetConversation", request)
        return reply

    async def enrich(self, document_id: str = "", *, text: str = "", title: str = "") -> common_pb2.Enrichment:
        """Type, title, summary, tags and entities through the chat backend: of a stored document (stored too) or a text."""
        request = chat_pb2.EnrichRequest(document_id=document_id, text=text, title=title)
        reply: common_pb2.Enrichment = await self.call("chat", "Enrich", request, timeout_s=max(self.timeout_s, 180.0))
        return reply

    async def enrich_deferred(self, document_ids: Iterable[str] = (), *, project: str = "") -> int:
        """Queue the enrichment a large import deferred: of these documents, else of a project, else of every one.
        How many documents were waiting."""
        ids = list(document_ids)
        request = ingest_pb2.EnrichDeferredRequest(document_ids=ids, project="" if ids else project, all=not ids and not project)
        reply: ingest_pb2.EnrichDeferredResponse = await self.call("ingest", "EnrichDeferred", request)
        return reply.queued

    async def chat_model(self) -> chat_pb2.ChatModelInfo:
        reply: chat_pb2.ChatModelInfo = await self.call("chat", "GetModel", chat_pb2.GetChatModelRequest())
        return reply

    # -- embed --------------------------------------------------------------------------------------------------------

    async def embed_model(self) -> embed_pb2.ModelInfo:
        reply: embed_pb2.ModelInfo = await self.call("embed", "GetModel", embed_pb2.GetModelRequest())
        return reply

    async def embed(self, texts: list[str], *, model: str = "", query: bool = False) -> embed_pb2.EmbedResponse:
        purpose = embed_pb2.EMBED_PURPOSE_QUERY if query else embed_pb2.EMBED_PURPOSE_DOCUMENT
        reply: embed_pb2.EmbedResponse = await self.call("embed", "Embed", embed_pb2.EmbedRequest(texts=texts, purpose=purpose, model=model))
        return reply

    # -- tensor -------------------------------------------------------------------------------------------------------

    async def resample(self, spec: tensor_pb2.ResampleSpec, array: Any | None = None, *, transport: Transport | None = None,
                       timeout_s: float = TENSOR_TIMEOUT_S) -> EventStream[TensorEvent]:
        """Resample ``array`` (uploaded) or ``spec.input_path``: Started, TileReady (any order), then Finished."""
        stub = await self._stub("tensor")
        frames, admitted = await open_stream(
            "tensor", tensor_pb2.TensorFrame, self._data_plane(transport),
            lambda: stub.StartResample(requests_for(spec, array), timeout=timeout_s, metadata=call_metadata()),
            lambda: stub.Resample(requests_for(spec, array), timeout=timeout_s, metadata=call_metadata()), admission=False)
        return EventStream(frames, tensor_event, "tensor", admitted)

    # -- scheduler ----------------------------------------------------------------------------------------------------

    async def gpu_status(self) -> scheduler_pb2.SchedulerStatus:
        reply: scheduler_pb2.SchedulerStatus = await self.call("scheduler", "Status", scheduler_pb2.StatusRequest())
        return reply
