"""The gateway's HTTP API (FastAPI on Starlette): native REST + SSE, and the OpenAI-compatible surface.

Every error leaves as one JSON shape, ``{"error": {"message", "type", "code",
"status"}}`` (OpenAI's, so its clients show the message): malformed JSON 400,
schema violations 422 naming the field, oversized bodies 413, missing or wrong
keys 401, rate limits and a full chat queue 429 with Retry-After, mesh errors
mapped from their status once (status_response). A streamed answer is admitted (validated,
queued, retrieved) before its 200 is sent, so those errors keep their status;
after that, a failure arrives as an ``error`` event.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import convert
from services.gateway.auth import AuthError, KeyRing, Limited, RateLimiter
from services.gateway.bodies import discard_body
from services.gateway.deps import Gateway
from services.gateway.edge import EdgeGuard, Sessions
from services.gateway.mcp import mcp_app
from services.gateway.routers import admin, chat, hooks, knowledge, openai, ops, uploads, web
from services.gateway.routers.uploads import PREFIX as UPLOADS_PREFIX
from services.gateway.schemas import ERROR_RESPONSES
from services.gateway.upstream import Mesh
from shared.errors import DependencyError, DiscoveryError, ResourceExhausted, StatusError
from shared.runtime import metrics, secrets, tracing
from shared.runtime.config import Settings
from shared.runtime.logs import REQUEST_ID_HEADER, new_request_id, request_id

log = logging.getLogger("tessera.gateway")


def error(status: int, message: str, code: str = "", headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(convert.error_body(status, message, code), status_code=status, headers=headers)


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413, whether or not they announce their length."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "PATCH" and scope["path"].startswith(UPLOADS_PREFIX + "/"):
            await self.app(scope, receive, send)  # a resumable upload streams to disk, within its own declared length
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = error(413, f"the request body is larger than the gateway accepts ({self.limit} bytes)")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await discard_body(receive)
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
                    await discard_body(receive)
                await too_big(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


#: A request id a caller may choose: short, and safe in logs and headers.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
#: Mounted apps are counted under their prefix; any other path the router did not match, as "other".
MOUNTS = ("/mcp", "/web", "/docs/assets")


class HttpObserver:
    """Every request: a request id (the caller's X-Request-ID, or a new one) that its gRPC calls carry and that the
    response returns; a server span (the trace's root, or under the caller's traceparent); and its count and time by
    method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        given = headers.get(REQUEST_ID_HEADER, "")
        rid = given if REQUEST_ID.fullmatch(given) else new_request_id()
        rid_token = request_id.set(rid)
        span = tracing.start(f"HTTP {scope['method']}", kind=SpanKind.SERVER, parent=tracing.extract(headers),
                             http_method=scope["method"], http_target=scope["path"])
        otel_token = otel_context.attach(trace.set_span_in_context(span))

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or next(
                (m for m in MOUNTS if scope["path"].startswith(m)), "other")
            metrics.HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)
            span.update_name(f"HTTP {scope['method']} {route}")
            span.set_attribute("http_status_code", status)
            if status >= 500:
                tracing.fail(span, str(status))
            span.end()
            otel_context.detach(otel_token)
            request_id.reset(rid_token)


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
    mcp_server, mcp_guarded = mcp_app(settings, mesh)
    sessions = Sessions(secrets.ensure(settings, secrets.SESSION_KEY), settings.gateway.session_hours)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with mcp_server.session_manager.run():  # the MCP sessions at /mcp
            yield

    app = FastAPI(title="Tessera", version="1.0", description="Capture, search and ask your notes. "
                  "Streamed answers arrive as server-sent events; an OpenAI-compatible surface lives under /v1; "
                  "an MCP server (streamable HTTP) at /mcp; the web page at /.", responses=ERROR_RESPONSES, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  # FastAPI's own spans would start a second trace beside HttpObserver's (it reads only the headers)
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    app.state.gateway = Gateway(settings, mesh, keys, limiter, ready, mesh_status, sessions)
    add_error_handlers(app)
    for module in (ops, knowledge, chat, openai, uploads, hooks, admin, web):
        app.include_router(module.router)
    web.mount_static(app)
    app.mount("/mcp", mcp_guarded)
    guarded = EdgeGuard(BodyLimit(app, settings.gateway.max_body_bytes), settings, keys, limiter, limiter.cache, sessions)
    return HttpObserver(guarded)


def status_response(exc: StatusError) -> JSONResponse:
    """The one mapping of the error tree to HTTP: its status, its sentence, its code, and Retry-After when known."""
    headers = {}
    if isinstance(exc, ResourceExhausted) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return error(exc.http_status, exc.message, getattr(exc, "error_code", exc.code), headers)


def add_error_handlers(app: FastAPI) -> None:
    async def on_auth(request: Request, exc: Exception) -> Response:
        return error(401, str(exc), "invalid_api_key", {"WWW-Authenticate": "Bearer"})

    async def on_limited(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Limited)
        return error(429, str(exc), "rate_limit_exceeded", {"Retry-After": str(exc.retry_after_s)})

    async def on_invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        status, message = validation_message(exc)
        return error(status, message, "invalid_request")

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    async def on_status(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StatusError)
        return status_response(exc)

    async def on_unreachable(request: Request, exc: Exception) -> Response:
        return error(503, str(exc), "UNAVAILABLE")  # no instance found (discovery), or a dependency is down

    for cls, handler in ((AuthError, on_auth), (Limited, on_limited), (RequestValidationError, on_invalid),
                         (HTTPException, on_http), (StatusError, on_status), (DiscoveryError, on_unreachable),
                         (DependencyError, on_unreachable)):
        app.add_exception_handler(cls, handler)
