"""Process lifecycle: graceful drain on SIGTERM, a dead cache, and bad configuration."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from helpers import ROOT, Launcher, ServiceProcess, child_env, mesh_channel, service_ports, wait_serving

from shared.client import Client, Done, StatusError, Token
from shared.gen.tessera.v1 import common_pb2, common_pb2_grpc, embed_pb2, embed_pb2_grpc
from shared.ops.infra import embedded_servers, free_port
from shared.runtime import bus
from shared.runtime.config import Settings, load_settings, settings_env


def own_ports(settings: Settings, **extra: str) -> Settings:
    """The session's infrastructure with service ports of its own, so a process can be killed freely."""
    return load_settings({**settings_env(settings), **service_ports(), **extra})


async def in_flight(settings: Settings, method: str) -> int:
    async with mesh_channel(settings, settings.address("embed")) as ch:
        info = await common_pb2_grpc.NodeServiceStub(ch).GetInfo(common_pb2.GetInfoRequest(), timeout=5)
    return next((m.in_flight for m in info.methods if m.method == method), 0)


async def test_sigterm_lets_the_in_flight_call_finish(infra: Settings, launcher: Launcher) -> None:
    settings = own_ports(infra, TESSERA_GRACE_S="60")
    sp = launcher.start("embed", settings)
    await asyncio.to_thread(wait_serving, settings, [sp])
    texts = [f"Paragraph {i}: " + "the committee reviewed the measurements of the coastal stations again " * 6
             for i in range(400)]
    async with mesh_channel(settings, settings.address("embed")) as ch:
        call = asyncio.ensure_future(embed_pb2_grpc.EmbedServiceStub(ch).Embed(embed_pb2.EmbedRequest(texts=texts), timeout=120))
        while await in_flight(settings, "/tessera.v1.EmbedService/Embed") == 0:
            assert not call.done(), "the call finished before SIGTERM could be sent; make it longer"
            await asyncio.sleep(0.05)
        sp.proc.send_signal(signal.SIGTERM)
        response = await call
    assert len(response.vectors) == len(texts)
    assert await asyncio.to_thread(sp.proc.wait, 60) == 0
    log = sp.output()
    assert log.index('"msg": "stopping"') < log.index('"msg": "stopped"')


async def test_a_dead_redis_degrades_but_embed_keeps_answering(infra: Settings, mesh: dict[str, ServiceProcess],
                                                                restart_redis: Callable[[], None]) -> None:
    redis = next(s for s in embedded_servers(infra) if s.name == "redis")
    redis.stop()
    try:
        async with mesh_channel(infra, infra.address("embed")) as ch:
            stub = embed_pb2_grpc.EmbedServiceStub(ch)
            text = f"cache is down {uuid.uuid4()}"  # never cached before; with the cache up, repeats would be hits
            for _ in range(3):
                reply = await stub.Embed(embed_pb2.EmbedRequest(texts=[text]), timeout=10)
                assert reply.dim == 384 and reply.cache_hits == 0
            state = common_pb2.DEPENDENCY_STATE_UNSPECIFIED
            for _ in range(60):  # readiness is re-checked every 2 s
                info = await common_pb2_grpc.NodeServiceStub(ch).GetInfo(common_pb2.GetInfoRequest(), timeout=5)
                state = next(d.state for d in info.dependencies if d.name == "redis")
                if state == common_pb2.DEPENDENCY_STATE_DEGRADED:
                    break
                await asyncio.sleep(0.1)
            assert state == common_pb2.DEPENDENCY_STATE_DEGRADED and info.ready, "a dead cache degrades, it does not unready"
    finally:
        restart_redis()


async def test_instances_share_one_port(infra: Settings, launcher: Launcher) -> None:
    """Two instances of a service on one port (SO_REUSEPORT), both registered: `pm2 scale` adds capacity."""
    settings = own_ports(infra)
    procs = [launcher.start("tensor", settings) for _ in range(2)]
    await asyncio.to_thread(wait_serving, settings, procs[:1])
    nc = await bus.connect(settings, "test-reuseport")
    try:
        mine: list[dict[str, str]] = []
        for _ in range(100):  # the session's mesh runs a tensor too, on another port
            mine = [i for i in await bus.discover(nc, "tensor") if i["grpc_addr"] == settings.address("tensor")]
            if len(mine) == 2:
                break
            await asyncio.sleep(0.1)
        assert len({i["instance_id"] for i in mine}) == 2
        assert all(p.proc.poll() is None for p in procs)
    finally:
        await nc.close()
        for p in procs:
            p.stop()


def run_service(service: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def the_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """Exactly one line that is not a JSON log record (or a gRPC runtime note)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(("{", "I1", "W1", "E1"))]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_setting_value_exits_2_naming_it(infra: Settings) -> None:
    result = run_service("tensor", child_env(own_ports(infra), TESSERA_LOG_LEVEL="loud"))
    assert result.returncode == 2
    assert the_error_line(result) == ("tensor: config: TESSERA_LOG_LEVEL: unknown value 'loud'; "
                                      "expected one of debug, info, warning, error")


@pytest.mark.parametrize(("service", "port_field", "setting"), [
    ("tensor", "tensor_port", "TESSERA_TENSOR_PORT"),          # the gRPC port
    ("gateway", "gateway_port", "TESSERA_GATEWAY_PORT"),       # the gateway's HTTP port
])
def test_port_in_use_exits_2_naming_the_port_setting(infra: Settings, service: str, port_field: str, setting: str) -> None:
    settings = own_ports(infra)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", getattr(settings, port_field)))
        squatter.listen()
        result = run_service(service, child_env(settings))
    assert result.returncode == 2
    line = the_error_line(result)
    assert line.startswith(f"{service}: config: {setting}: cannot listen on 127.0.0.1:") and "in use" in line


@pytest.mark.parametrize(("service", "setting", "url"), [
    ("ingest", "TESSERA_DATABASE_URL", "postgresql://tessera@127.0.0.1:{port}/tessera"),
    ("tensor", "TESSERA_NATS_URL", "nats://127.0.0.1:{port}"),
])
def test_unreachable_dependency_exits_1_naming_the_setting(infra: Settings, service: str, setting: str, url: str) -> None:
    env = child_env(own_ports(infra, TESSERA_DB_CONNECT_TIMEOUT_S="2"), **{setting: url.format(port=free_port())})
    start = time.monotonic()
    result = run_service(service, env)
    assert result.returncode == 1, result.stderr
    line = the_error_line(result)
    assert line.startswith(f"{service}: ") and setting in line
    assert time.monotonic() - start < 50, "a dead dependency must fail fast, not hang"


async def test_sigterm_drains_a_chat_stream_on_quic_within_the_deadline(infra: Settings, launcher: Launcher) -> None:
    """Stop accepting first (health, new answers refused), let the answer in flight on the data plane finish,
    then close: the whole within pm2's kill timeout (grace + 5 s)."""
    grace = 15.0
    settings = own_ports(infra, TESSERA_GRACE_S=str(grace), TESSERA_CHAT_SLOTS="1")
    sp = launcher.start("chat", settings)
    await asyncio.to_thread(wait_serving, settings, [sp])
    async with Client(settings, timeout_s=30) as client:
        stream = await client.chat("Write a long story about a lighthouse keeper.", rag=False, max_tokens=150)
        events = stream.__aiter__()
        first = await asyncio.wait_for(events.__anext__(), 60)
        assert isinstance(first, Token)
        sp.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        with pytest.raises(StatusError) as refused:  # no new answer once stopping
            await asyncio.sleep(0.3)
            await client.chat("Another question?", rag=False, max_tokens=4)
        assert refused.value.code == "UNAVAILABLE"
        rest = [event async for event in events]
    assert isinstance(rest[-1], Done) and rest[-1].finish_reason in ("stop", "length"), rest[-1:]
    assert await asyncio.to_thread(sp.proc.wait, grace + 5) == 0
    assert time.monotonic() - signalled <= grace + 5
    log = sp.output()
    stopping, draining, stopped = log.index('"msg": "stopping"'), log.index("quic: draining streams"), log.index('"msg": "stopped"')
    assert stopping < draining < stopped
