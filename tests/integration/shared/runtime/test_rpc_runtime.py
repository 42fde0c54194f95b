"""The rpc bootstrap and client factory, on real gRPC servers in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import make_settings, mesh_channel

from shared.errors import NotFound, ResourceExhausted, StatusError
from shared.gen.tessera.v1 import (
    common_pb2,
    embed_pb2,
    embed_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from shared.runtime.channels import Channels
from shared.runtime.config import Settings
from shared.runtime.host import ServiceHost
from shared.runtime.logs import request_id


@pytest.fixture
async def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, TESSERA_DEADLINE_MS="3000", TESSERA_GRACE_S="2")


async def start(settings: Settings, service: str, pb2: Any, pb2_grpc: Any, name: str, **handlers: Any) -> ServiceHost:
    """A host serving ``handlers``; the service's other RPCs raise UNIMPLEMENTED (a StatusError, as any handler may)."""
    host = ServiceHost(settings, service, f"{service}-test")
    for method in pb2.DESCRIPTOR.services_by_name[name].methods:
        if method.name not in handlers:
            handlers[method.name] = _unimplemented(service, method.name)
    host.add_service(pb2, pb2_grpc, name, **handlers)
    await host.bind()
    await host.mark_ready()
    return host


@pytest.fixture
async def hosts() -> AsyncIterator[list[ServiceHost]]:
    started: list[ServiceHost] = []
    yield started
    for host in started:
        await host.shutdown()


async def test_deadline_and_request_id_travel_to_the_next_hop(settings: Settings, hosts: list[ServiceHost]) -> None:
    seen: dict[str, Any] = {}
    channels = Channels(settings)

    async def get_model(request: Any, context: grpc.aio.ServicerContext) -> embed_pb2.ModelInfo:
        seen["remaining"] = context.time_remaining()
        seen["request_id"] = request_id.get()
        return embed_pb2.ModelInfo(model_id="m")

    async def search(request: Any, context: grpc.aio.ServicerContext) -> search_pb2.SearchResponse:
        embed = await channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
        await embed.GetModel(embed_pb2.GetModelRequest())  # no timeout given: inherits the incoming deadline
        return search_pb2.SearchResponse()

    hosts.append(await start(settings, "embed", embed_pb2, embed_pb2_grpc, "EmbedService", GetModel=get_model))
    hosts.append(await start(settings, "search", search_pb2, search_pb2_grpc, "SearchService", Search=search))
    async with mesh_channel(settings, settings.address("search")) as ch:
        await search_pb2_grpc.SearchServiceStub(ch).Search(search_pb2.SearchRequest(query="q"), timeout=1.5,
                                                           metadata=(("x-request-id", "rid-travels"),))
    assert seen["request_id"] == "rid-travels"
    # gRPC sends a deadline as a rounded grpc-timeout (TEST_SEED=35228955 saw 1.509 s): well under the 3 s default
    assert 0 < seen["remaining"] <= 1.55, "the second hop must not outlive the first call's deadline"

    # Outside any call the default deadline (TESSERA_DEADLINE_MS=3000) applies.
    embed = await channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
    await embed.GetModel(embed_pb2.GetModelRequest())
    assert 1.5 < seen["remaining"] <= 3.1  # gRPC rounds deadlines up slightly
    await channels.close()


async def test_only_idempotent_calls_are_retried(settings: Settings, hosts: list[ServiceHost]) -> None:
    attempts = {"Status": 0, "Acquire": 0}

    async def flaky(name: str, context: grpc.aio.ServicerContext) -> None:
        attempts[name] += 1
        if attempts[name] == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "scheduler: briefly unavailable")

    async def status(request: Any, context: grpc.aio.ServicerContext) -> scheduler_pb2.SchedulerStatus:
        await flaky("Status", context)
        return scheduler_pb2.SchedulerStatus(cpu_only=True)

    async def acquire(request: Any, context: grpc.aio.ServicerContext) -> scheduler_pb2.Lease:
        await flaky("Acquire", context)
        return scheduler_pb2.Lease(lease_id="l1")

    hosts.append(await start(settings, "scheduler", scheduler_pb2, scheduler_pb2_grpc, "SchedulerService",
                             Status=status, Acquire=acquire))
    channels = Channels(settings)
    stub = await channels.stub("scheduler", scheduler_pb2_grpc.SchedulerServiceStub)
    assert (await stub.Status(scheduler_pb2.StatusRequest())).cpu_only
    assert attempts["Status"] == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Acquire(scheduler_pb2.AcquireRequest(service="t", bytes=1))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE and attempts["Acquire"] == 1
    await channels.close()

    # abort() sends the status before the handler unwinds, so the client can see the error a moment before
    # the server has recorded it; wait (bounded) for the handler to finish.
    want = {"/tessera.v1.SchedulerService/Status": {"UNAVAILABLE": 1, "OK": 1},
            "/tessera.v1.SchedulerService/Acquire": {"UNAVAILABLE": 1}}
    for _ in range(100):
        codes = {m.method: dict(m.codes) for m in hosts[0].info().methods}
        if all(codes.get(k) == v for k, v in want.items()):
            break
        await asyncio.sleep(0.02)
    assert {k: codes.get(k) for k in want} == want


def _unimplemented(service: str, method: str) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise StatusError("UNIMPLEMENTED", f"{service}: {method} is not served by this test host")

    return handler


async def test_status_errors_become_the_call_status(settings: Settings, hosts: list[ServiceHost]) -> None:
    """The interceptor maps the error tree to gRPC once: code, sentence, and retry-after for RESOURCE_EXHAUSTED."""
    async def search(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request.query == "busy":
            raise ResourceExhausted("search: busy", retry_after=1.5)
        raise NotFound(f"search: no document {request.query!r}")

    hosts.append(await start(settings, "search", search_pb2, search_pb2_grpc, "SearchService", Search=search))
    async with mesh_channel(settings, settings.address("search")) as ch:
        stub = search_pb2_grpc.SearchServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Related(search_pb2.RelatedRequest(document_id="d"), timeout=2)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert err.value.details() == "search: Related is not served by this test host"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Search(search_pb2.SearchRequest(query="x"), timeout=2)
        assert (err.value.code(), err.value.details()) == (grpc.StatusCode.NOT_FOUND, "search: no document 'x'")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Search(search_pb2.SearchRequest(query="busy"), timeout=2)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(err.value.trailing_metadata() or ())["retry-after-ms"] == "1500"


async def test_a_service_must_serve_every_rpc(settings: Settings) -> None:
    host = ServiceHost(settings, "search", "search-test")
    with pytest.raises(TypeError, match="Related"):
        host.add_service(search_pb2, search_pb2_grpc, "SearchService", Search=_unimplemented("search", "Search"))


async def test_readiness_follows_required_dependencies(settings: Settings, hosts: list[ServiceHost]) -> None:
    state = {"db_up": False, "cache_up": False}

    async def db_check() -> str:
        if not state["db_up"]:
            raise ConnectionError("refused")
        return "ok"

    async def cache_check() -> str:
        if not state["cache_up"]:
            raise ConnectionError("refused")
        return "ok"

    host = ServiceHost(settings, "ingest", "ingest-test")
    host.add_dependency("postgres", db_check)
    host.add_dependency("redis", cache_check, required=False)
    await host.bind()
    hosts.append(host)

    async def health() -> int:
        async with mesh_channel(settings, settings.address("ingest")) as ch:
            resp = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return resp.status

    with pytest.raises(grpc.aio.AioRpcError) as err:  # startup hooks finish before the server accepts calls
        await health()
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    await host.mark_ready()
    assert await health() == health_pb2.HealthCheckResponse.NOT_SERVING, "postgres is down"
    state["db_up"] = True
    for _ in range(50):
        if await health() == health_pb2.HealthCheckResponse.SERVING:
            break
        await asyncio.sleep(0.1)
    assert await health() == health_pb2.HealthCheckResponse.SERVING
    deps = {d.name: d.state for d in host.info().dependencies}
    assert deps == {"postgres": common_pb2.DEPENDENCY_STATE_OK, "redis": common_pb2.DEPENDENCY_STATE_DEGRADED}
