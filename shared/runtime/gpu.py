"""Client side of the GPU scheduler: ask for a lease, keep it renewed, give it back.

A service that cannot reach the scheduler runs on the CPU (a lease whose device is
"cpu" and whose id is empty) rather than failing; the scheduler also answers "cpu"
itself when the host has no GPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import cast

import grpc

from shared.gen.tessera.v1 import scheduler_pb2, scheduler_pb2_grpc
from shared.runtime.channels import Channels
from shared.runtime.config import Settings

log = logging.getLogger("tessera.gpu")
Priority = scheduler_pb2.Priority


def on_gpu(lease: scheduler_pb2.Lease) -> bool:
    return lease.device.startswith("cuda")


def renew_in(lease: scheduler_pb2.Lease, now: float) -> float:
    """Seconds until a lease should be renewed: a third of what is left of it at ``now`` (wall clock), at least 50 ms."""
    left = lease.expires_at.ToNanoseconds() / 1e9 - now
    return max(0.05, left / 3)


class GpuLeases:
    """Leases held by one service instance; renewed in the background until released."""

    def __init__(self, settings: Settings, channels: Channels, service: str, holder: str) -> None:
        self.settings, self.channels, self.service, self.holder = settings, channels, service, holder
        self._renewers: dict[str, asyncio.Task[None]] = {}

    async def _stub(self) -> scheduler_pb2_grpc.SchedulerServiceStub:
        return await self.channels.stub("scheduler", scheduler_pb2_grpc.SchedulerServiceStub)

    async def acquire(self, priority: int, nbytes: int, *, max_wait_ms: int | None = None, keep: bool = True) -> scheduler_pb2.Lease:
        """A lease for nbytes; with keep, it is renewed until release(). CPU when the scheduler is unreachable."""
        wait_ms = self.settings.scheduler.gpu_acquire_wait_ms if max_wait_ms is None else max_wait_ms
        request = scheduler_pb2.AcquireRequest(service=self.service, holder_id=self.holder, priority=cast(scheduler_pb2.Priority, priority),
                                               bytes=nbytes, max_wait_ms=wait_ms)
        try:
            stub = await self._stub()
            lease: scheduler_pb2.Lease = await stub.Acquire(request, timeout=wait_ms / 1000 + 5, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            log.warning("no GPU lease, running on the CPU", extra={"reason": exc.details() or exc.code().name})
            return scheduler_pb2.Lease(device="cpu", device_index=-1, bytes=nbytes, service=self.service, holder_id=self.holder)
        if keep and lease.lease_id:
            self._renewers[lease.lease_id] = asyncio.create_task(self._renew(lease))
        return lease

    async def _renew(self, lease: scheduler_pb2.Lease) -> None:
        """Renew when a third of the lease's own remaining life is left (its expires_at, as the scheduler set it), so
        that this process needs no knowledge of the scheduler's TTL setting."""
        while True:
            wait = renew_in(lease, time.time())
            await asyncio.sleep(wait)
            try:
                lease = await (await self._stub()).Renew(scheduler_pb2.RenewRequest(lease_id=lease.lease_id), timeout=max(0.5, wait))
            except grpc.aio.AioRpcError as exc:
                log.warning("lease renewal failed", extra={"lease": lease.lease_id, "code": exc.code().name})
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return

    async def release(self, lease: scheduler_pb2.Lease) -> None:
        task = self._renewers.pop(lease.lease_id, None)
        if task:
            task.cancel()
        if lease.lease_id:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await (await self._stub()).Release(scheduler_pb2.ReleaseRequest(lease_id=lease.lease_id), timeout=5)

    async def close(self) -> None:
        for lease_id in list(self._renewers):
            await self.release(scheduler_pb2.Lease(lease_id=lease_id))
