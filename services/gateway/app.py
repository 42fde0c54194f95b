"""The gateway's HTTP API (FastAPI on Starlette): native REST + SSE, and the OpenAI-compatible surface.

Every error leaves as one JSON shape, ``{"error": {"message", "type", "code",
"status"}}`` (OpenAI's, so its clients show the message): malformed JSON 400,
schema violations 422 naming the field, oversized bodies 413, missing or wrong
keys 401, rate limits and a full chat queue 429 with Retry-After, mesh errors
mapped from their gRPC status. A streamed answer is admitted (validated,
queued, retrieved) before its 200 is sent, so those errors keep their status;
after that, a failure arrives as an ``error`` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import convert
from services.gateway.auth import AuthError, KeyRing, Limited, RateLimiter
from services.gateway.schemas import CHAT_SSE, COMPLETIONS_SSE, ERROR_RESPONSES, ChatCompletionIn, ChatIn, EmbeddingsIn, NoteIn, SearchIn
from services.gateway.sse import KEEPALIVE, SSE_HEADERS, SSE_KEEPALIVE, RelayStats, relay, sse_data, sse_event
from services.gateway.upstream import Mesh, UpstreamError
from shared.gen.tessera.v1 import chat_pb2, search_pb2
from shared.quic import QuicError
from shared.runtime.config import Settings

log = logging.getLogger("tessera.gateway")
MAX_EMBED_INPUTS = 256


def error(status: int, message: str, code: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(convert.error_body(status, message, code), status_code=status, headers=headers)


def upstream_response(code: grpc.StatusCode, details: str, trailing: dict[str, str]) -> JSONResponse:
    status = convert.HTTP_STATUS.get(code, 502)
    headers = {}
    if "retry-after-ms" in trailing:
        headers["Retry-After"] = str(max(1, round(int(trailing["retry-after-ms"]) / 1000)))
    return error(status, details or f"the mesh answered {code.name}", code.name, headers)


#: A refused body is read to its end (and dropped) up to this much, for at most this long, before the 413.
DISCARD_BYTES = 16 * 1024 * 1024
DISCARD_S = 5.0


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413, whether or not they announce their length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = error(413, f"the request body is larger than the gateway accepts ({self.limit} bytes)")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._discard_rest(receive)
            await too_big(scope, receive, send)
            return
        if declared is not None:
            await self.app(scope, receive, send)  # the server holds the client to its Content-Length
            return
        # No length given (chunked): read at most limit + 1 bytes first, then replay them to the app.
        messages: list[Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                if message.get("more_body", False):
                    await self._discard_rest(receive)
                await too_big(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _discard_rest(receive: Receive) -> None:
        """Read (and drop) the rest of a refused body before answering, within bounds: a server that closes with
        request bytes unread makes TCP reset the connection, and the client can lose the 413 it was sent."""
        budget, deadline = DISCARD_BYTES, time.monotonic() + DISCARD_S
        while budget > 0 and time.monotonic() < deadline:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            budget -= len(message.get("body", b""))


@dataclass
class Streams:
    """Open event streams, for /api/v1/status and the backpressure tests."""

    open: int = 0


def validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        e = next(e for e in errors if e.get("type") == "json_invalid")
        return 400, f"the request body is not valid JSON: {e.get('ctx', {}).get('error', e.get('msg'))}"
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        msg = "unknown field" if e.get("type") == "extra_forbidden" else e.get("msg", "invalid")
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return 422, "invalid request: " + "; ".join(parts) + more


def build_app(settings: Settings, mesh: Mesh, keys: KeyRing, limiter: RateLimiter, ready: Callable[[], bool],
              mesh_status: Callable[[], Awaitable[dict[str, Any]]]) -> ASGIApp:
    app = FastAPI(title="Tessera", version="1.0", description="Capture, search and ask your notes. "
                  "Streamed answers arrive as server-sent events; an OpenAI-compatible surface lives under /v1.",
                  responses=ERROR_RESPONSES)
    streams = Streams()
    bearer = HTTPBearer(auto_error=False, description="An API key from TESSERA_GATEWAY_API_KEYS (only when keys are configured).")

    async def guard(request: Request, _: Any = Depends(bearer)) -> str:
        client = request.client.host if request.client else "unknown"
        who = keys.identify(request.headers.get("authorization"), client)
        await limiter.check(who)
        return who

    auth = [Depends(guard)]

    @app.exception_handler(AuthError)
    async def _auth(request: Request, exc: AuthError) -> Response:
        return error(401, str(exc), "invalid_api_key", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Limited)
    async def _limited(request: Request, exc: Limited) -> Response:
        return error(429, str(exc), "rate_limit_exceeded", {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        status, message = validation_message(exc)
        return error(status, message, "invalid_request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc(request: Request, exc: grpc.aio.AioRpcError) -> Response:
        return upstream_response(exc.code(), exc.details() or "", dict(exc.trailing_metadata() or ()))

    @app.exception_handler(UpstreamError)
    async def _upstream(request: Request, exc: UpstreamError) -> Response:
        return upstream_response(exc.code, exc.details, exc.trailing)

    # -- operations ------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    async def index() -> dict[str, Any]:
        return {"service": "tessera", "openapi": "/openapi.json", "docs": "/docs",
                "endpoints": ["/api/v1/notes", "/api/v1/search", "/api/v1/related", "/api/v1/chat", "/api/v1/conversations",
                              "/v1/chat/completions", "/v1/embeddings", "/v1/models"]}

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> Response:
        """The gateway's own dependencies answer."""
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    @app.get("/api/v1/status", tags=["operations"], dependencies=auth)
    async def status() -> Response:
        """Every service of the mesh, with this gateway's open event streams."""
        report = await mesh_status()
        report["gateway"] = {"open_streams": streams.open, "relay_high_water": RelayStats.high_water,
                             "relay_capacity": settings.chat_stream_buffer}
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    # -- knowledge ---------------------------------------------------------------

    @app.post("/api/v1/notes", tags=["knowledge"], status_code=201, dependencies=auth)
    async def capture(note: NoteIn) -> dict[str, Any]:
        """Write a markdown note (with frontmatter) into the notes folder and index it."""
        path, reply = await mesh.capture(note)
        return {"document_id": reply.file.document_id, "path": str(path), "job_id": reply.job_id,
                "state": convert.FILE_STATES.get(reply.file.state, "unknown"), "chunks": reply.file.chunks}

    @app.get("/api/v1/jobs/{job_id}", tags=["knowledge"], dependencies=auth)
    async def job(job_id: str) -> dict[str, Any]:
        """Ingest status: counts and every file's state."""
        return convert.job_json(await mesh.job(job_id))

    @app.get("/api/v1/documents/{document_id}", tags=["knowledge"], dependencies=auth)
    async def document(document_id: str) -> dict[str, Any]:
        return convert.document_json(await mesh.document(document_id))

    @app.post("/api/v1/search", tags=["knowledge"], dependencies=auth)
    async def search(body: SearchIn) -> dict[str, Any]:
        """Hybrid search: hits with fused and per-signal scores, and where each came from."""
        return convert.search_json(await mesh.search(convert.search_pb(body)))

    @app.get("/api/v1/search", tags=["knowledge"], dependencies=auth)
    async def search_get(q: str = Query(min_length=1, max_length=2000), top_k: int = Query(10, ge=1, le=100),
                         mode: str = Query("hybrid", pattern="^(hybrid|lexical|vector)$"), project: str = Query("", max_length=200)) -> dict[str, Any]:
        body = SearchIn(query=q, top_k=top_k, mode=mode, filters={"project": project} if project else None)  # type: ignore[arg-type]
        return convert.search_json(await mesh.search(convert.search_pb(body)))

    @app.get("/api/v1/related", tags=["knowledge"], dependencies=auth)
    async def related(document_id: str = Query("", max_length=64), path: str = Query("", max_length=4096),
                      limit: int = Query(10, ge=1, le=100)) -> Response:
        """Documents linked to one (by its id or path), best first."""
        if bool(document_id) == bool(path):
            return error(400, "give exactly one of document_id or path")
        req = search_pb2.RelatedRequest(document_id=document_id, limit=limit) if document_id else search_pb2.RelatedRequest(path=path, limit=limit)
        reply = await mesh.related(req)
        return JSONResponse({"related": [{"document_id": r.document_id, "title": r.title, "path": r.path, "score": r.score} for r in reply.related]})

    # -- chat ----------------------------------------------------------------------

    async def admitted(request: chat_pb2.ChatRequest) -> Any:
        return await mesh.chat(request)

    async def events_of(call: Any) -> AsyncIterator[tuple[str, chat_pb2.ChatEvent]]:
        """(kind, event) through the bounded relay; kind "keepalive" (with an empty event) in quiet spells."""
        streams.open += 1
        try:
            async for item in relay(call, settings.chat_stream_buffer, settings.gateway_keepalive_s, cancel=call.cancel):
                if item is KEEPALIVE:
                    yield "keepalive", chat_pb2.ChatEvent()
                else:
                    assert isinstance(item, chat_pb2.ChatEvent)
                    yield str(item.WhichOneof("event")), item
        finally:
            streams.open -= 1

    @app.post("/api/v1/chat", tags=["chat"], dependencies=auth, responses=CHAT_SSE)
    async def chat(body: ChatIn) -> Response:
        """Ask a question. Streamed (default): server-sent events `token`, `citation`, `done` or `error`,
        with `: keep-alive` comments while the answer is being prepared."""
        call = await admitted(convert.chat_pb(body))
        if not body.stream:
            text, citations, done = await collect(call)
            return JSONResponse({"answer": text, "citations": citations, **convert.done_json(done)})

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for kind, ev in events_of(call):
                    if kind == "keepalive":
                        yield SSE_KEEPALIVE
                    elif kind == "token":
                        yield sse_event("token", {"text": ev.token.text, "index": ev.token.index, "citations": list(ev.token.citations)})
                    elif kind == "citation":
                        yield sse_event("citation", convert.citation_json(ev.citation))
                    elif kind == "done":
                        yield sse_event("done", convert.done_json(ev.done))
                    elif kind == "error":
                        yield sse_event("error", {"code": ev.error.code, "message": ev.error.message})
            except grpc.aio.AioRpcError as exc:
                yield sse_event("error", {"code": exc.code().name, "message": exc.details() or exc.code().name})
            except QuicError as exc:
                yield sse_event("error", {"code": "UNAVAILABLE", "message": f"chat: the answer stream broke: {exc}"})

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    async def collect(call: Any) -> tuple[str, list[dict[str, Any]], chat_pb2.ChatDone]:
        try:
            return await collect_events(call)
        except QuicError as exc:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, f"chat: the answer stream broke: {exc}", {}) from None

    async def collect_events(call: Any) -> tuple[str, list[dict[str, Any]], chat_pb2.ChatDone]:
        text, citations, done = [], [], None
        async for ev in call:
            kind = ev.WhichOneof("event")
            if kind == "token":
                text.append(ev.token.text)
            elif kind == "citation":
                citations.append(convert.citation_json(ev.citation))
            elif kind == "done":
                done = ev.done
            elif kind == "error":
                raise UpstreamError(grpc.StatusCode.INTERNAL, ev.error.message, {})
        if done is None:
            raise UpstreamError(grpc.StatusCode.UNAVAILABLE, "chat: the answer ended early", {})
        return "".join(text), citations, done

    @app.get("/api/v1/conversations", tags=["chat"], dependencies=auth)
    async def conversations(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        reply = await mesh.conversations(limit)
        return {"conversations": [{"conversation_id": c.conversation_id, "title": c.title, "created_at": c.created_at.ToJsonString()}
                                  for c in reply.conversations]}

    @app.get("/api/v1/conversations/{conversation_id}", tags=["chat"], dependencies=auth)
    async def conversation(conversation_id: str) -> dict[str, Any]:
        return convert.conversation_json(await mesh.conversation(conversation_id))

    # -- OpenAI-compatible -----------------------------------------------------------

    @app.get("/v1/models", tags=["openai"], dependencies=auth)
    async def models() -> dict[str, Any]:
        chat_model, embed_model = await mesh.chat_model(), await mesh.embed_model()
        return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "tessera"}
                                           for m in (chat_model.name, embed_model.model_id)]}

    @app.post("/v1/chat/completions", tags=["openai"], dependencies=auth, responses=COMPLETIONS_SSE)
    async def completions(body: ChatCompletionIn) -> Response:
        """OpenAI chat completions, answered from your notes (rag: true by default). Each chunk carries a `citations`
        list (new citations in it); the last one carries `sources` and `conversation_id`."""
        name = (await mesh.chat_model()).name
        model = "" if body.model in ("tessera", name) else body.model
        call = await admitted(convert.completion_pb(body, model))
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        if not body.stream:
            text, citations, done = await collect(call)
            return JSONResponse(convert.completion_json(completion_id, name, text, citations, done))
        chunks = convert.CompletionChunks(completion_id, name)
        usage = bool(body.stream_options and body.stream_options.include_usage)

        async def stream() -> AsyncIterator[bytes]:
            pending: list[dict[str, Any]] = []
            try:
                async for kind, ev in events_of(call):
                    if kind == "keepalive":
                        yield SSE_KEEPALIVE
                    elif kind == "citation":
                        pending.append(convert.citation_json(ev.citation))
                    elif kind == "token":
                        yield sse_data(chunks.content(ev.token.text, pending))
                        pending = []
                    elif kind == "done":
                        yield sse_data(chunks.done(ev.done))
                        if usage:
                            yield sse_data(chunks.usage(ev.done))
                    elif kind == "error":
                        yield sse_data(convert.error_body(500, ev.error.message, ev.error.code))
                        return
            except grpc.aio.AioRpcError as exc:
                status = convert.HTTP_STATUS.get(exc.code(), 502)
                yield sse_data(convert.error_body(status, exc.details() or exc.code().name, exc.code().name))
                return
            except QuicError as exc:
                yield sse_data(convert.error_body(502, f"chat: the answer stream broke: {exc}", "UNAVAILABLE"))
                return
            yield sse_data("[DONE]")

        return StreamingResponse(stream(), media_type="text/event-stream", headers=SSE_HEADERS)

    @app.post("/v1/embeddings", tags=["openai"], dependencies=auth)
    async def embeddings(body: EmbeddingsIn) -> Response:
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not texts or len(texts) > MAX_EMBED_INPUTS:
            return error(400, f"input must hold 1 to {MAX_EMBED_INPUTS} texts; it holds {len(texts)}")
        info = await mesh.embed_model()
        if body.dimensions is not None and body.dimensions != info.dim:
            return error(400, f"dimensions must be {info.dim} for {info.model_id} (it cannot be shortened)")
        if body.model not in (info.model_id, "tessera"):
            return error(404, f"no embedding model {body.model!r}; this server runs {info.model_id!r}", "model_not_found")
        started = time.monotonic()
        reply = await mesh.embed(texts, info.model_id)
        log.debug("embeddings", extra={"texts": len(texts), "ms": round((time.monotonic() - started) * 1000, 1)})
        tokens = sum(len(t.split()) for t in texts)  # words: the gateway does not load the embedding tokenizer
        return JSONResponse({"object": "list", "model": reply.model_id,
                             "data": [convert.embedding_json(list(v.values), i, body.encoding_format) for i, v in enumerate(reply.vectors)],
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    return BodyLimit(app, settings.gateway_max_body_bytes)

