"""The gateway's calls into the mesh (gRPC through shared.runtime.channels.Channels) and the note files it writes."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from services.gateway.notes import note_markdown, note_name
from services.gateway.schemas import NoteIn
from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc, embed_pb2, embed_pb2_grpc, ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from shared.quic import FrameStream, QuicClient, QuicError, StreamRefused
from shared.runtime.channels import Channels
from shared.runtime.config import Settings

#: A streamed answer may take this long in all (queue, retrieval, prefill and generation).
CHAT_TIMEOUT_S = 600.0
UPLOAD_FRAME = 256 * 1024
#: Model names change only when a service restarts with another model.
MODEL_INFO_TTL_S = 30.0


class UpstreamError(Exception):
    """A mesh call that failed before its stream opened."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: dict[str, str]) -> None:
        super().__init__(details)
        self.code, self.details, self.trailing = code, details, trailing


async def opened(call: Any) -> dict[str, str]:
    """Wait until a streaming call is admitted (its initial metadata); raise UpstreamError if it failed first."""
    try:
        md = {k: v for k, v in (await call.initial_metadata() or ())}
    except grpc.aio.AioRpcError as exc:
        raise UpstreamError(exc.code(), exc.details() or "", dict(exc.trailing_metadata() or ())) from None
    if not md:  # an admitted chat always sends metadata; none means the call ended
        code = await call.code()
        if code != grpc.StatusCode.OK:
            raise UpstreamError(code, await call.details() or "", {k: v for k, v in (await call.trailing_metadata() or ())})
    return md


class QuicAnswer:
    """An answer read over the data plane; iterates ChatEvents like a gRPC Chat call, ``cancel()`` stops it."""

    def __init__(self, stream: FrameStream[chat_pb2.ChatEvent], conversation_id: str) -> None:
        self.stream, self.conversation_id = stream, conversation_id

    def __aiter__(self) -> AsyncIterator[chat_pb2.ChatEvent]:
        return self.stream.__aiter__()

    def cancel(self) -> None:
        self.stream.cancel()


class Mesh:
    def __init__(self, settings: Settings, channels: Channels) -> None:
        self.settings = settings
        self.channels = channels
        self.quic = QuicClient(settings)
        self.notes_dir = Path(settings.notes_dir).expanduser().resolve() if settings.notes_dir else settings.path("notes")
        self._write_lock = asyncio.Lock()
        self._models: dict[str, tuple[float, object]] = {}

    async def chat_stub(self) -> chat_pb2_grpc.ChatServiceStub:
        return await self.channels.stub("chat", chat_pb2_grpc.ChatServiceStub)

    async def chat(self, request: chat_pb2.ChatRequest) -> Any:
        """An admitted answer to iterate (ChatEvents); UpstreamError when chat refused it.

        Over QUIC (the default): StartChat validates, retrieves and hands out a
        ticket; the tokens come on a stream of the one connection to that chat
        instance. Over gRPC: the Chat stream, admitted once its metadata arrives.
        """
        stub = await self.chat_stub()
        if self.settings.gateway_chat_transport == "grpc":
            call = stub.Chat(request, timeout=CHAT_TIMEOUT_S)
            await opened(call)
            return call
        try:
            reply = await stub.StartChat(request, timeout=CHAT_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            raise UpstreamError(exc.code(), exc.details() or "", dict(exc.trailing_metadata() or ())) from None
        try:
            stream = await self.quic.open(reply.ticket, chat_pb2.ChatEvent)
        except StreamRefused as exc:
            code = getattr(grpc.StatusCode, exc.code, grpc.StatusCode.UNAVAILABLE)
            raise UpstreamError(code, str(exc), {}) from None
        except QuicError as exc:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, f"chat: the answer stream could not be opened: {exc}", {}) from None
        return QuicAnswer(stream, reply.conversation_id)

    async def close(self) -> None:
        await self.quic.close()

    async def _model_info(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Model names and limits, looked up at most every MODEL_INFO_TTL_S rather than on every request."""
        cached = self._models.get(key)
        if cached is None or time.monotonic() - cached[0] > MODEL_INFO_TTL_S:
            cached = (time.monotonic(), await fetch())
            self._models[key] = cached
        return cached[1]

    async def chat_model(self) -> chat_pb2.ChatModelInfo:
        stub = await self.chat_stub()
        return await self._model_info("chat", lambda: stub.GetModel(chat_pb2.GetChatModelRequest()))

    async def embed_model(self) -> embed_pb2.ModelInfo:
        stub = await self.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
        return await self._model_info("embed", lambda: stub.GetModel(embed_pb2.GetModelRequest()))

    async def embed(self, texts: list[str], model: str) -> embed_pb2.EmbedResponse:
        stub = await self.channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
        return await stub.Embed(embed_pb2.EmbedRequest(texts=texts, purpose=embed_pb2.EMBED_PURPOSE_DOCUMENT, model=model))

    async def search(self, request: search_pb2.SearchRequest) -> search_pb2.SearchResponse:
        return await (await self.channels.stub("search", search_pb2_grpc.SearchServiceStub)).Search(request)

    async def related(self, request: search_pb2.RelatedRequest) -> search_pb2.RelatedResponse:
        return await (await self.channels.stub("search", search_pb2_grpc.SearchServiceStub)).Related(request)

    async def job(self, job_id: str) -> ingest_pb2.IngestJob:
        stub = await self.channels.stub("ingest", ingest_pb2_grpc.IngestServiceStub)
        return await stub.GetJob(ingest_pb2.GetJobRequest(job_id=job_id, include_files=True))

    async def document(self, document_id: str) -> ingest_pb2.Document:
        stub = await self.channels.stub("ingest", ingest_pb2_grpc.IngestServiceStub)
        return await stub.GetDocument(ingest_pb2.GetDocumentRequest(document_id=document_id))

    async def conversations(self, limit: int) -> chat_pb2.ListConversationsResponse:
        return await (await self.chat_stub()).ListConversations(chat_pb2.ListConversationsRequest(limit=limit))

    async def conversation(self, conversation_id: str) -> chat_pb2.Conversation:
        return await (await self.chat_stub()).GetConversation(chat_pb2.GetConversationRequest(conversation_id=conversation_id))

    async def capture(self, note: NoteIn) -> tuple[Path, ingest_pb2.IngestDocumentResponse]:
        """Write the note as a markdown file (the source of truth), then upload it to ingest."""
        now = dt.datetime.now(dt.UTC)
        folder = self.notes_dir / (note.project or "inbox")
        text = note_markdown(note, now)
        async with self._write_lock:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / note_name(note, now, set(os.listdir(folder)))
            tmp = path.with_suffix(".md.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        data = text.encode()
        header = ingest_pb2.DocumentHeader(path=str(path), project=note.project, media_type="text/markdown", size_bytes=len(data))

        async def frames() -> Any:
            yield ingest_pb2.IngestDocumentChunk(header=header)
            for i in range(0, len(data), UPLOAD_FRAME):
                yield ingest_pb2.IngestDocumentChunk(data=data[i:i + UPLOAD_FRAME])

        stub = await self.channels.stub("ingest", ingest_pb2_grpc.IngestServiceStub)
        try:
            reply = await stub.IngestDocument(frames())
        except grpc.aio.AioRpcError as exc:
            # The file stays: it is the source of truth, and the next ingest of the folder indexes it.
            raise UpstreamError(exc.code(), f"the note was saved to {path} but not indexed: {exc.details()}", {}) from None
        return path, reply
