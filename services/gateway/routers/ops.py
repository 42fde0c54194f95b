"""Operations: the index, liveness, readiness and the mesh's status."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from services.gateway.deps import AUTH, Gateway, gateway
from services.gateway.sse import RelayStats

router = APIRouter(tags=["operations"])


@router.get("/", include_in_schema=False)
async def index() -> dict[str, Any]:
    return {"service": "tessera", "openapi": "/openapi.json", "docs": "/docs",
            "endpoints": ["/api/v1/notes", "/api/v1/search", "/api/v1/related", "/api/v1/chat", "/api/v1/conversations",
                          "/v1/chat/completions", "/v1/embeddings", "/v1/models"]}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(g: Gateway = Depends(gateway)) -> Response:
    """The gateway's own dependencies answer."""
    return JSONResponse({"ready": g.ready()}, status_code=200 if g.ready() else 503)


@router.get("/api/v1/status", dependencies=AUTH)
async def status(g: Gateway = Depends(gateway)) -> Response:
    """Every service of the mesh, with this gateway's open event streams."""
    report = await g.mesh_status()
    report["gateway"] = {"open_streams": g.streams.open, "relay_high_water": RelayStats.high_water,
                         "relay_capacity": g.settings.chat.stream_buffer}
    return JSONResponse(report, status_code=200 if report["ok"] else 503)
