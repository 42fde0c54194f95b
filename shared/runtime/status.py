"""Health of the whole mesh: every service's gRPC health and node info, and the
infrastructure (PostgreSQL, NATS, Redis). Used by `tessera status`, `tessera up`
and the gateway's /api/v1/status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shared.gen.tessera.v1 import common_pb2, common_pb2_grpc
from shared.runtime import bus, db, secrets
from shared.runtime.channels import KeyedChannel, key_metadata
from shared.runtime.config import SERVICES, Settings


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):  # a zombie child counts as gone
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


DEP_STATE = {common_pb2.DEPENDENCY_STATE_OK: "ok", common_pb2.DEPENDENCY_STATE_DEGRADED: "degraded",
             common_pb2.DEPENDENCY_STATE_DOWN: "down", common_pb2.DEPENDENCY_STATE_UNSPECIFIED: "unknown"}


async def check_service(settings: Settings, service: str, timeout: float = 2.0) -> dict[str, Any]:
    """{"service", "address", "status", "instance", "uptime_s", "dependencies", "detail"} for one service."""
    addr = settings.address(service)
    out: dict[str, Any] = {"service": service, "address": addr, "status": "UNREACHABLE", "detail": ""}
    async with KeyedChannel(grpc.aio.insecure_channel(addr), key_metadata(settings)) as channel:
        try:
            resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            out["status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
            info = await common_pb2_grpc.NodeServiceStub(channel).GetInfo(common_pb2.GetInfoRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            refused = exc.code() == grpc.StatusCode.UNAVAILABLE and "refused" in (exc.details() or "")
            out["detail"] = "nothing listens there (connection refused)" if refused else (exc.details() or exc.code().name)
            return out
    out["instance"] = info.instance_id
    out["pid"] = info.pid
    out["uptime_s"] = round(time.time() - info.started_at.ToSeconds(), 1)
    out["dependencies"] = {d.name: DEP_STATE[d.state] for d in info.dependencies}
    out["detail"] = "; ".join(f"{d.name}: {d.detail}" for d in info.dependencies if d.state != common_pb2.DEPENDENCY_STATE_OK)
    return out


async def _postgres(settings: Settings) -> str:
    async with await db.connect_once(settings.with_overrides(db_connect_timeout_s=2.0)) as conn:
        row = await (await conn.execute("SELECT current_setting('server_version'),"
                                        " (SELECT extversion FROM pg_extension WHERE extname = 'vector')")).fetchone()
    assert row is not None
    return f"PostgreSQL {row[0]}, pgvector {row[1] or 'not installed'}"


async def _nats(settings: Settings) -> str:
    nc = await bus.probe(secrets.nats_url(settings))
    try:
        info = await nc.jetstream().account_info()
        v = nc.connected_server_version
        return f"NATS {v.major}.{v.minor}.{v.patch}, JetStream {info.streams} streams"
    finally:
        await nc.close()


async def _redis(settings: Settings) -> str:
    client = aioredis.Redis.from_url(secrets.redis_url(settings), socket_timeout=2, socket_connect_timeout=2)
    try:
        server = (await client.info("server"))
        name = "Valkey" if "valkey_version" in server else "Redis"
        return f"{name} {server.get('valkey_version') or server.get('redis_version')}"
    finally:
        await client.aclose()


async def check_infra(settings: Settings) -> list[dict[str, Any]]:
    """[{"name", "url", "status": "UP"|"DOWN", "detail", "required"}] for Postgres, NATS and Redis."""
    checks = (("postgres", settings.infra.database_url, _postgres, True), ("nats", settings.infra.nats_url, _nats, True),
              ("redis", settings.infra.redis_url, _redis, False))
    results = await asyncio.gather(*(asyncio.wait_for(fn(settings), 5.0) for _, _, fn, _ in checks), return_exceptions=True)
    out = []
    for (name, url, _, required), result in zip(checks, results, strict=True):
        ok = not isinstance(result, BaseException)
        out.append({"name": name, "url": db.redact(url), "status": "UP" if ok else "DOWN", "required": required,
                    "detail": str(result) if ok else f"{type(result).__name__}: {result}".strip()})
    return out


async def instance_counts(settings: Settings) -> dict[str, int]:
    """Live instances per service, from NATS micro registrations (empty when NATS is down)."""
    try:
        nc = await bus.probe(secrets.nats_url(settings))
    except Exception:  # noqa: BLE001 — boundary: a status probe; no NATS means the counts are unknown
        return {}
    try:
        found = await asyncio.gather(*(bus.discover(nc, s) for s in SERVICES))
        return {s: len(f) for s, f in zip(SERVICES, found, strict=True)}
    finally:
        await nc.close()


async def mesh_status(settings: Settings) -> dict[str, Any]:
    services, infra, counts = await asyncio.gather(
        asyncio.gather(*(check_service(settings, s) for s in SERVICES)), check_infra(settings), instance_counts(settings))
    for svc in services:
        svc["instances"] = counts.get(svc["service"], 0)
    ok = all(s["status"] == "SERVING" for s in services) and all(i["status"] == "UP" for i in infra if i["required"])
    return {"ok": ok, "services": list(services), "infra": infra}


def selftests(settings: Settings, service: str) -> list[dict[str, Any]]:
    """The self-test markers a service's processes left in <data_dir>/run (chat writes one per pm2 instance)."""
    out = []
    for path in sorted(settings.path("run").glob(f"{service}-*.selftest.json")):
        try:
            marker = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if marker.get("state") == "running" and not pid_alive(int(marker.get("pid", 0))):
            marker["state"] = "died"
        out.append(marker)
    return out


def why_not_serving(restarts: int, markers: list[dict[str, Any]]) -> str:
    """One sentence for a service that is not SERVING, from pm2's restart count and its self-test markers."""
    parts = []
    if restarts:
        parts.append(f"the process has restarted {restarts} time{'s' if restarts != 1 else ''}")
    for m in markers:
        if m.get("state") == "died":
            parts.append(f"pid {m.get('pid')} died during its model self-test (a crash in the model runtime: "
                         "a llama.cpp built for another CPU?)")
        elif m.get("state") == "failed":
            parts.append(f"it failed its self-test: {m.get('detail', '')}")
        elif m.get("state") == "running":
            parts.append("its model self-test is running")
    return "; ".join(parts)
