"""The gateway's ASGI application (Starlette); no I/O of its own beyond what it is given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

StatusFn = Callable[[], Awaitable[dict[str, Any]]]


def build_app(mesh_status: StatusFn, ready: Callable[[], bool]) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    async def status(request: Request) -> Response:
        report = await mesh_status()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    async def index(request: Request) -> Response:
        return JSONResponse({"service": "tessera", "endpoints": ["/healthz", "/readyz", "/api/v1/status"]})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": {"status": exc.status_code, "message": exc.detail}}, status_code=exc.status_code)

    return Starlette(
        routes=[Route("/", index), Route("/healthz", healthz), Route("/readyz", readyz), Route("/api/v1/status", status)],
        exception_handlers={HTTPException: http_error},
    )
