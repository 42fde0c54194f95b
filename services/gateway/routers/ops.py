"""Operations: the index, liveness, readiness and the mesh's status."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.gateway.deps import AUTH, Gateway, gateway
from services.gateway.sse import RelayStats
from shared.conversions import backlog_json
from shared.errors import DiscoveryError, StatusError
from shared.gen.tessera.v1 import scheduler_pb2
from shared.ops import snapshot
from shared.runtime import metrics

router = APIRouter(tags=["operations"])


@router.get("/api", include_in_schema=False)
async def index() -> dict[str, Any]:
    return {"service": "tessera", "web": "/", "openapi": "/openapi.json", "docs": "/docs",
            "endpoints": ["/api/v1/notes", "/api/v1/search", "/api/v1/related", "/api/v1/chat", "/api/v1/conversations",
                          "/api/v1/map", "/api/v1/review", "/api/v1/stale", "/api/v1/enrich", "/api/v1/watch",
                          "/v1/chat/completions", "/v1/embeddings", "/v1/models"]}


@router.get("/metrics", include_in_schema=False)
async def prometheus(g: Gateway = Depends(gateway)) -> Response:
    """Prometheus metrics: HTTP by route and status, open event streams, the gateway's gRPC methods, the process."""
    metrics.HTTP_STREAMS.set(g.streams.open)
    return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


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
    report["gpu"] = await gpu_json(g)
    report["backlog"] = await backlog_report(g)
    report["snapshots"] = await asyncio.to_thread(snapshot.last_json, g.settings)
    report["gateway"] = {"open_streams": g.streams.open, "relay_high_water": RelayStats.high_water,
                         "relay_capacity": g.settings.chat.stream_buffer}
    return JSONResponse(report, status_code=200 if report["ok"] else 503)


async def backlog_report(g: Gateway) -> dict[str, Any]:
    """Background work left and its ETA (ingest's library); an error sentence when ingest cannot answer."""
    try:
        return backlog_json((await g.mesh.client.library()).backlog)
    except (StatusError, DiscoveryError) as exc:
        return {"error": f"ingest did not answer: {exc}"}


async def gpu_json(g: Gateway) -> dict[str, Any]:
    """The scheduler's devices, leases (by service and priority class) and queue; an error sentence when it cannot answer."""
    try:
        st = await g.mesh.client.gpu_status()
    except (StatusError, DiscoveryError) as exc:
        return {"error": f"the scheduler did not answer: {exc}"}
    return {"cpu_only": st.cpu_only,
            "devices": [{"index": d.index, "name": d.name, "total_bytes": d.total_bytes, "free_bytes": d.free_bytes,
                         "granted_bytes": d.granted_bytes, "utilization": d.utilization, "source": d.source} for d in st.devices],
            "leases": [{"service": lease.service, "device": lease.device, "bytes": lease.bytes, "holder_id": lease.holder_id,
                        "priority": scheduler_pb2.Priority.Name(lease.priority).removeprefix("PRIORITY_").lower(),
                        "expires_at": lease.expires_at.ToJsonString()} for lease in st.leases],
            "queue": [{"service": w.service, "bytes": w.bytes, "waited_ms": w.waited_ms,
                       "priority": scheduler_pb2.Priority.Name(w.priority).removeprefix("PRIORITY_").lower()} for w in st.queue]}
