"""A real scheduler process with a simulated device (the same interface NVML stands behind)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from gpu import nvml_or_skip
from helpers import ROOT, Launcher, ServiceProcess, child_env, mesh_channel, service_ports, wait_serving

from shared.gen.tessera.v1 import scheduler_pb2 as pb
from shared.gen.tessera.v1 import scheduler_pb2_grpc
from shared.runtime.config import Settings, load_settings, settings_env

GIB = 1024**3
MIB = 1024**2
BUDGET = 4 * GIB - 512 * MIB  # TESSERA_SCHEDULER_SIM_GIB=4 less the default 512 MiB margin


async def queued(stub: scheduler_pb2_grpc.SchedulerServiceStub, n: int, timeout: float = 5.0) -> None:
    """Until the scheduler's queue holds ``n`` waiters (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len((await stub.Status(pb.StatusRequest(), timeout=5)).queue) < n:
        assert loop.time() < end, f"fewer than {n} waiters queued after {timeout} s"
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def sim(infra: Settings, launcher: Launcher) -> Iterator[Settings]:
    settings = load_settings({**settings_env(infra), **service_ports(), "TESSERA_SCHEDULER_DEVICES": "simulated",
                              "TESSERA_SCHEDULER_SIM_GIB": "4", "TESSERA_SCHEDULER_AGING_MS": "400"})
    proc = launcher.start("scheduler", settings)
    wait_serving(settings, [proc])
    yield settings
    proc.stop()  # it registered with the session's NATS: the mesh tests count one scheduler, in any order


@pytest.fixture
async def stub(sim: Settings) -> AsyncIterator[scheduler_pb2_grpc.SchedulerServiceStub]:
    async with mesh_channel(sim, sim.address("scheduler")) as ch:
        yield scheduler_pb2_grpc.SchedulerServiceStub(ch)


async def acquire(stub: scheduler_pb2_grpc.SchedulerServiceStub, service: str, prio: int, nbytes: int,
                  wait_ms: int = 10_000, ttl_ms: int = 0) -> pb.Lease:
    return await stub.Acquire(pb.AcquireRequest(service=service, holder_id=service, priority=prio, bytes=nbytes,  # type: ignore[arg-type]
                                                max_wait_ms=wait_ms, ttl_ms=ttl_ms), timeout=wait_ms / 1000 + 5)


async def test_never_oversubscribed_under_concurrent_load(stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
    rng = random.Random(11)
    held = 0
    peak = 0
    seen_over: list[int] = []
    stop = asyncio.Event()

    async def monitor() -> None:
        while not stop.is_set():
            status = await stub.Status(pb.StatusRequest(), timeout=5)
            if status.devices[0].granted_bytes > BUDGET:
                seen_over.append(status.devices[0].granted_bytes)
            await asyncio.sleep(0.01)

    async def worker(i: int) -> None:
        nonlocal held, peak
        for _ in range(6):
            nbytes = rng.randint(128 * MIB, 2 * GIB)
            lease = await acquire(stub, f"w{i}", rng.choice(list(pb.Priority.values())[1:]), nbytes)
            held += lease.bytes
            peak = max(peak, held)
            assert held <= BUDGET
            await asyncio.sleep(rng.uniform(0, 0.03))
            held -= lease.bytes
            await stub.Release(pb.ReleaseRequest(lease_id=lease.lease_id), timeout=5)

    watcher = asyncio.create_task(monitor())
    await asyncio.gather(*(worker(i) for i in range(12)))
    stop.set()
    await watcher
    assert seen_over == [] and peak > BUDGET // 2
    status = await stub.Status(pb.StatusRequest(), timeout=5)
    assert status.devices[0].granted_bytes == 0 and not status.queue


async def test_interactive_first_then_by_class(stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
    hog = await acquire(stub, "hog", pb.PRIORITY_TENSOR_BATCH, BUDGET)
    order: list[str] = []

    async def one(name: str, prio: int) -> None:
        lease = await acquire(stub, name, prio, BUDGET)
        order.append(name)
        await stub.Release(pb.ReleaseRequest(lease_id=lease.lease_id), timeout=5)

    tasks = []
    for name, prio in (("tensor", pb.PRIORITY_TENSOR_BATCH), ("background", pb.PRIORITY_BACKGROUND_EMBEDDING),
                       ("chat", pb.PRIORITY_INTERACTIVE)):
        tasks.append(asyncio.create_task(one(name, prio)))
        await queued(stub, len(tasks))  # each waits in line before the next arrives
    await stub.Release(pb.ReleaseRequest(lease_id=hog.lease_id), timeout=5)
    await asyncio.gather(*tasks)
    assert order == ["chat", "background", "tensor"]


async def test_aging_shows_in_status(stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
    hog = await acquire(stub, "hog", pb.PRIORITY_INTERACTIVE, BUDGET)
    waiting = asyncio.ensure_future(acquire(stub, "tensor", pb.PRIORITY_TENSOR_BATCH, GIB))
    await queued(stub, 1)
    first = (await stub.Status(pb.StatusRequest(), timeout=5)).queue[0].effective_priority
    assert first == pb.PRIORITY_TENSOR_BATCH
    loop = asyncio.get_running_loop()
    started, later = loop.time(), first
    while later > pb.PRIORITY_TENSOR_BATCH - 2:  # TESSERA_SCHEDULER_AGING_MS=400: two classes up after ~0.8 s
        assert loop.time() - started < 5, f"no aging after 5 s: still {later}"
        await asyncio.sleep(0.05)
        later = (await stub.Status(pb.StatusRequest(), timeout=5)).queue[0].effective_priority
    assert loop.time() - started >= 0.6, "aging must take time (two periods of 400 ms)"
    await stub.Release(pb.ReleaseRequest(lease_id=hog.lease_id), timeout=5)
    await stub.Release(pb.ReleaseRequest(lease_id=(await waiting).lease_id), timeout=5)


async def test_an_expired_lease_comes_back_by_itself(stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
    crashed = await acquire(stub, "crashed-holder", pb.PRIORITY_TENSOR_BATCH, BUDGET, ttl_ms=600)
    survivor = await acquire(stub, "next", pb.PRIORITY_TENSOR_BATCH, BUDGET, wait_ms=10_000)
    status = await stub.Status(pb.StatusRequest(), timeout=5)
    assert [lease.lease_id for lease in status.leases] == [survivor.lease_id]
    assert any("crashed-holder expired" in d for d in status.decisions)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Renew(pb.RenewRequest(lease_id=crashed.lease_id), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    renewed = await stub.Renew(pb.RenewRequest(lease_id=survivor.lease_id, ttl_ms=60_000), timeout=5)
    assert renewed.expires_at.ToSeconds() > survivor.expires_at.ToSeconds()
    await stub.Release(pb.ReleaseRequest(lease_id=survivor.lease_id), timeout=5)


async def test_a_cancelled_wait_leaves_the_queue(stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
    hog = await acquire(stub, "hog", pb.PRIORITY_INTERACTIVE, BUDGET)
    call = stub.Acquire(pb.AcquireRequest(service="impatient", priority=pb.PRIORITY_TENSOR_BATCH, bytes=GIB, max_wait_ms=30_000),
                        timeout=35)
    await queued(stub, 1)  # the waiter is in line before it leaves
    call.cancel()
    queue: list[pb.Waiter] = [pb.Waiter()]
    for _ in range(100):
        queue = list((await stub.Status(pb.StatusRequest(), timeout=5)).queue)
        if not queue:
            break
        await asyncio.sleep(0.02)
    assert queue == []
    await stub.Release(pb.ReleaseRequest(lease_id=hog.lease_id), timeout=5)
    status = await stub.Status(pb.StatusRequest(), timeout=5)
    assert not status.leases, "nothing may be granted to a caller that left"


async def test_refusals_are_clear(stub: scheduler_pb2_grpc.SchedulerServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await acquire(stub, "huge", pb.PRIORITY_TENSOR_BATCH, 8 * GIB)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "largest device offers 3.50 GiB" in err.value.details()
    hog = await acquire(stub, "hog", pb.PRIORITY_INTERACTIVE, BUDGET)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await acquire(stub, "late", pb.PRIORITY_INTERACTIVE, GIB, wait_ms=200)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Acquire(pb.AcquireRequest(service="x", priority=0, bytes=1), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "PRIORITY_INTERACTIVE" in err.value.details()
    await stub.Release(pb.ReleaseRequest(lease_id=hog.lease_id), timeout=5)


async def test_without_a_gpu_chat_and_embed_hold_cpu_leases(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    async with mesh_channel(infra, infra.address("scheduler")) as ch:
        status = await scheduler_pb2_grpc.SchedulerServiceStub(ch).Status(pb.StatusRequest(), timeout=5)
    assert status.cpu_only and not status.devices
    by_service = {lease.service: lease for lease in status.leases}
    assert {"chat", "embed"} <= set(by_service)
    assert by_service["chat"].priority == pb.PRIORITY_INTERACTIVE and by_service["chat"].device == "cpu"
    assert by_service["embed"].priority == pb.PRIORITY_QUERY_EMBEDDING and by_service["embed"].device == "cpu"


@pytest.mark.gpu
def test_nvml_reads_the_real_devices() -> None:
    source = nvml_or_skip()
    devices = source.read()
    assert devices and all(0 < d.free <= d.total and d.source == "nvml" for d in devices)


def test_tessera_gpu_status(sim: Settings, infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    out = subprocess.run([sys.executable, "-m", "shared.cli", "gpu", "status"], cwd=ROOT, env=child_env(infra),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "CPU-only" in out.stdout and "chat" in out.stdout and "PRIORITY_INTERACTIVE" in out.stdout
    sim_out = subprocess.run([sys.executable, "-m", "shared.cli", "gpu", "status", "--json"], cwd=ROOT, env=child_env(sim),
                             capture_output=True, text=True, timeout=60)
    report = json.loads(sim_out.stdout)
    assert report["devices"][0]["source"] == "simulated" and int(report["devices"][0]["total_bytes"]) == 4 * GIB
