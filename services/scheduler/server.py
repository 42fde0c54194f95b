"""Wires the lease policy to gRPC: Acquire waits on a future that the policy resolves, and a reaper expires
leases, refreshes the devices' figures and re-runs the policy as waiters age."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from services.scheduler.devices import DeviceSource, detect
from services.scheduler.policy import Lease, LeasePolicy, Priority
from shared.errors import DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted
from shared.gen.tessera.v1 import scheduler_pb2, scheduler_pb2_grpc
from shared.runtime import metrics
from shared.runtime.service import Runtime, main

SERVICE = "scheduler"
NEEDS = ("nats",)
log = logging.getLogger("tessera.scheduler")


def _wall(monotonic_t: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int((time.time() + monotonic_t - time.monotonic()) * 1e9))
    return ts


def lease_proto(lease: Lease, cpu: bool = False) -> scheduler_pb2.Lease:
    return scheduler_pb2.Lease(
        lease_id=lease.lease_id, device="cpu" if cpu else f"cuda:{lease.device}", device_index=-1 if cpu else lease.device,
        bytes=lease.bytes, expires_at=_wall(lease.expires_at), service=lease.service, holder_id=lease.holder,
        priority=cast(scheduler_pb2.Priority, int(lease.priority)))


class Scheduler:
    def __init__(self, rt: Runtime, source: DeviceSource | None) -> None:
        s = rt.settings
        self.rt, self.source = rt, source
        self.policy = LeasePolicy(source.read() if source else [], s.scheduler.margin_mb * 1024**2, s.scheduler.aging_ms / 1000)
        self.default_ttl = s.scheduler.lease_ttl_ms / 1000
        self.cpu_leases: dict[str, Lease] = {}
        self.futures: dict[str, asyncio.Future[Lease]] = {}
        self.wake = asyncio.Event()

    @property
    def cpu_only(self) -> bool:
        return self.source is None

    def _run_policy(self) -> None:
        for grant in self.policy.schedule(time.monotonic()):
            fut = self.futures.pop(grant.waiter.request_id, None)
            if fut is not None and not fut.done():
                fut.set_result(grant.lease)
            else:  # the waiter left between deciding and granting: give it back
                self.policy.release(grant.lease.lease_id)

    async def _capacity_changed(self, leases: list[Lease]) -> None:
        self._run_policy()

    async def reaper(self) -> None:
        """Expire leases, refresh device figures, re-run the policy as waiters age."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=0.25)
            self.wake.clear()
            if self.source is not None:
                fresh = {d.index: d for d in await asyncio.to_thread(self.source.read)}
                for dev in self.policy.devices:
                    if dev.index in fresh:
                        dev.free, dev.utilization = fresh[dev.index].free, fresh[dev.index].utilization
            now = time.monotonic()
            expired = self.policy.expire(now) + [self.cpu_leases.pop(k) for k, v in list(self.cpu_leases.items()) if v.expires_at <= now]
            await self._capacity_changed(expired)

    # -- RPCs ---------------------------------------------------------------
    async def Acquire(self, request: scheduler_pb2.AcquireRequest, context: grpc.aio.ServicerContext) -> scheduler_pb2.Lease:
        if not request.service:
            raise InvalidArgument("scheduler: service is required")
        if request.priority not in [int(p) for p in Priority]:
            raise InvalidArgument("scheduler: priority must be one of "
                                + ", ".join(f"PRIORITY_{p.name}" for p in Priority))
        ttl = request.ttl_ms / 1000 if request.ttl_ms else self.default_ttl
        holder = request.holder_id or request.service
        if self.cpu_only:
            lease = Lease(f"cpu-{uuid.uuid4().hex[:12]}", request.service, holder, Priority(request.priority), -1, request.bytes,
                          time.monotonic() + ttl)
            self.cpu_leases[lease.lease_id] = lease
            return lease_proto(lease, cpu=True)
        request_id = uuid.uuid4().hex
        # Refused (RESOURCE_EXHAUSTED) when no device could ever hold it.
        self.policy.request(request_id, request.service, holder, Priority(request.priority), request.bytes, ttl, time.monotonic())
        fut: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        self.futures[request_id] = fut
        self._run_policy()
        remaining = context.time_remaining()
        wait = request.max_wait_ms / 1000
        if remaining is not None:
            wait = min(wait, max(0.0, remaining - 0.05))
        granted: Lease | None
        try:
            granted = await asyncio.wait_for(asyncio.shield(fut), timeout=wait) if not fut.done() else fut.result()
        except TimeoutError:
            granted = None
        finally:
            # Cancelled (the client went away), timed out or granted: never leave a waiter behind.
            if not fut.done():
                self.futures.pop(request_id, None)
                self.policy.withdraw(request_id, "gave up or was cancelled")
                fut.cancel()
        if granted is None:
            message = f"scheduler: no room for {request.bytes} bytes within {wait * 1000:.0f} ms"
            raise DeadlineExceeded(message) if request.max_wait_ms else ResourceExhausted(message)
        return lease_proto(granted)

    async def Renew(self, request: scheduler_pb2.RenewRequest, context: grpc.aio.ServicerContext) -> scheduler_pb2.Lease:
        ttl = request.ttl_ms / 1000 if request.ttl_ms else self.default_ttl
        if request.lease_id in self.cpu_leases:
            lease = self.cpu_leases[request.lease_id]
            lease.expires_at = time.monotonic() + ttl
            return lease_proto(lease, cpu=True)
        renewed = self.policy.renew(request.lease_id, ttl, time.monotonic())
        if renewed is None:
            raise NotFound(f"scheduler: no lease {request.lease_id!r} (released or expired)")
        return lease_proto(renewed)

    async def Release(self, request: scheduler_pb2.ReleaseRequest, context: grpc.aio.ServicerContext) -> scheduler_pb2.ReleaseResponse:
        if self.cpu_leases.pop(request.lease_id, None) is not None:
            return scheduler_pb2.ReleaseResponse(released=True)
        lease = self.policy.release(request.lease_id)
        if lease is not None:
            await self._capacity_changed([lease])
        return scheduler_pb2.ReleaseResponse(released=lease is not None)

    async def Status(self, request: scheduler_pb2.StatusRequest, context: grpc.aio.ServicerContext) -> scheduler_pb2.SchedulerStatus:
        now = time.monotonic()
        p = self.policy
        leases = [lease_proto(lease) for lease in p.leases.values()] + [lease_proto(lease, cpu=True) for lease in self.cpu_leases.values()]
        return scheduler_pb2.SchedulerStatus(
            cpu_only=self.cpu_only,
            devices=[scheduler_pb2.Device(index=d.index, name=d.name, total_bytes=d.total, free_bytes=d.free,
                                          granted_bytes=p.granted(d.index), utilization=d.utilization, source=d.source)
                     for d in p.devices],
            leases=leases,
            queue=[scheduler_pb2.Waiter(service=w.service, priority=cast(scheduler_pb2.Priority, int(w.priority)), bytes=w.bytes,
                                        waited_ms=(now - w.arrived_at) * 1000, effective_priority=p.effective_priority(w, now))
                   for w in p.queue(now)],
            decisions=list(p.decisions),
        )


async def setup(rt: Runtime) -> None:
    source = await asyncio.to_thread(detect, rt.settings.scheduler.devices, rt.settings.scheduler.sim_gib)
    sched = Scheduler(rt, source)
    mode = "cpu-only" if source is None else f"{source.name}, {len(sched.policy.devices)} device(s)"

    async def devices_ok() -> str:
        return mode

    rt.host.add_dependency("devices", devices_ok)
    reaper = asyncio.create_task(sched.reaper())

    async def lease_metrics() -> None:
        leases = [*sched.policy.leases.values(), *sched.cpu_leases.values()]
        for priority in Priority:
            name = priority.name.lower()
            held = [lease for lease in leases if lease.priority == priority]
            metrics.GPU_LEASES.labels(name).set(len(held))
            metrics.GPU_LEASED_BYTES.labels(name).set(sum(lease.bytes for lease in held))
            metrics.GPU_WAITING.labels(name).set(sum(w.priority == priority for w in sched.policy.waiters))

    metrics.on_scrape(lease_metrics)

    async def stop_reaper() -> None:
        reaper.cancel()

    rt.host.on_close(stop_reaper)

    rt.host.add_service(scheduler_pb2, scheduler_pb2_grpc, "SchedulerService",
                        Acquire=sched.Acquire, Renew=sched.Renew, Release=sched.Release, Status=sched.Status)
    log.info("scheduler ready", extra={"mode": mode})


def run() -> None:
    main(SERVICE, NEEDS, setup)
