"""Lease policy of the GPU scheduler: who gets device memory, and when. No I/O.

Rules, in order:
1. Never grant more than a device's budget: ``min(total - granted, free_reported)``
   less the safety margin. ``free_reported`` comes from NVML (or the simulator) and
   also covers memory used outside Tessera; counting both is conservative.
2. Waiters are served by effective priority: the class (interactive 1 < query
   embedding 2 < background embedding 3 < tensor batch 4) minus one step per
   ``aging_s`` waited, never better than interactive. Ties go to the holder with
   fewer bytes granted now (fairness within a class), then to the earlier arrival.
3. No backfill past a waiter that does not fit: a stream of small requests must not
   starve a large one. Aging keeps lower classes moving.
4. A request larger than any device's whole budget is refused at once.

Time is passed in (``now`` in seconds) so that tests and the benchmark can drive the
policy with a virtual clock.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

from shared.errors import ResourceExhausted
from shared.runtime.logs import fmt_bytes


class Priority(IntEnum):
    INTERACTIVE = 1
    QUERY_EMBEDDING = 2
    BACKGROUND_EMBEDDING = 3
    TENSOR_BATCH = 4


GIB = 1024**3


@dataclass
class Device:
    index: int
    name: str
    total: int
    free: int  # as last reported by the device source
    utilization: float = 0.0
    source: str = "simulated"


@dataclass
class Lease:
    lease_id: str
    service: str
    holder: str
    priority: Priority
    device: int
    bytes: int
    expires_at: float


@dataclass
class Waiter:
    request_id: str
    service: str
    holder: str
    priority: Priority
    bytes: int
    ttl_s: float
    arrived_at: float


@dataclass
class Grant:
    waiter: Waiter
    lease: Lease


class Refused(ResourceExhausted):
    """A request that can never be granted (larger than any device's budget)."""


@dataclass
class LeasePolicy:
    devices: list[Device]
    margin: int
    aging_s: float
    prioritise: bool = True  # False: one class for all (the benchmark's comparison run)
    leases: dict[str, Lease] = field(default_factory=dict)
    waiters: list[Waiter] = field(default_factory=list)
    decisions: deque[str] = field(default_factory=lambda: deque(maxlen=50))
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    # -- accounting -------------------------------------------------------
    def granted(self, device: int) -> int:
        return sum(lease.bytes for lease in self.leases.values() if lease.device == device)

    def budget(self, dev: Device) -> int:
        """Bytes that may still be granted on a device."""
        by_total = dev.total - self.margin - self.granted(dev.index)
        by_free = dev.free - self.margin
        return max(0, min(by_total, by_free))

    def capacity(self, dev: Device) -> int:
        return max(0, dev.total - self.margin)

    def holder_bytes(self, holder: str) -> int:
        return sum(lease.bytes for lease in self.leases.values() if lease.holder == holder)

    # -- ordering ---------------------------------------------------------
    def effective_priority(self, waiter: Waiter, now: float) -> float:
        if not self.prioritise:
            return 1.0
        steps = int((now - waiter.arrived_at) / self.aging_s) if self.aging_s > 0 else 0
        return float(max(int(Priority.INTERACTIVE), int(waiter.priority) - steps))

    def queue(self, now: float) -> list[Waiter]:
        return sorted(self.waiters, key=lambda w: (self.effective_priority(w, now), self.holder_bytes(w.holder), w.arrived_at))

    # -- operations -------------------------------------------------------
    def request(self, request_id: str, service: str, holder: str, priority: Priority, nbytes: int, ttl_s: float,
                now: float) -> Waiter:
        largest = max((self.capacity(d) for d in self.devices), default=0)
        if nbytes > largest:
            self._say(f"refused {service}: needs {fmt_bytes(nbytes)}, the largest device offers {fmt_bytes(largest)}")
            raise Refused(f"scheduler: {fmt_bytes(nbytes)} requested but the largest device offers {fmt_bytes(largest)} "
                          f"(after a {fmt_bytes(self.margin)} safety margin)")
        waiter = Waiter(request_id, service, holder, priority, nbytes, ttl_s, now)
        self.waiters.append(waiter)
        return waiter

    def withdraw(self, request_id: str, reason: str) -> bool:
        for w in self.waiters:
            if w.request_id == request_id:
                self.waiters.remove(w)
                self._say(f"{w.service} stopped waiting ({reason}) for {fmt_bytes(w.bytes)}")
                return True
        return False

    def schedule(self, now: float) -> list[Grant]:
        """Grant what fits, in order; stop at the first waiter that does not fit."""
        grants: list[Grant] = []
        for waiter in self.queue(now):
            device = max(self.devices, key=self.budget, default=None)
            if device is None or self.budget(device) < waiter.bytes:
                best = fmt_bytes(self.budget(device)) if device else "0 B"
                self._say(f"{waiter.service} ({waiter.priority.name.lower()}) waits: needs {fmt_bytes(waiter.bytes)}, "
                          f"best device has {best}; {len(self.waiters) - 1} behind or beside it", dedupe=True)
                break
            self.waiters.remove(waiter)
            lease = Lease(f"lease-{next(self._ids)}", waiter.service, waiter.holder, waiter.priority, device.index,
                          waiter.bytes, now + waiter.ttl_s)
            self.leases[lease.lease_id] = lease
            grants.append(Grant(waiter, lease))
            self._say(f"granted {fmt_bytes(waiter.bytes)} on cuda:{device.index} to {waiter.service} "
                      f"({waiter.priority.name.lower()}, waited {(now - waiter.arrived_at) * 1000:.0f} ms, "
                      f"effective priority {self.effective_priority(waiter, now):.0f})")
        return grants

    def renew(self, lease_id: str, ttl_s: float, now: float) -> Lease | None:
        lease = self.leases.get(lease_id)
        if lease is None:
            return None
        lease.expires_at = now + ttl_s
        return lease

    def release(self, lease_id: str) -> Lease | None:
        lease = self.leases.pop(lease_id, None)
        if lease is not None:
            self._say(f"{lease.service} released {fmt_bytes(lease.bytes)} on cuda:{lease.device}")
        return lease

    def expire(self, now: float) -> list[Lease]:
        gone = [lease for lease in self.leases.values() if lease.expires_at <= now]
        for lease in gone:
            del self.leases[lease.lease_id]
            self._say(f"reclaimed {fmt_bytes(lease.bytes)} on cuda:{lease.device}: lease of {lease.service} expired")
        return gone

    def _say(self, line: str, dedupe: bool = False) -> None:
        if dedupe and self.decisions and self.decisions[-1] == line:
            return
        self.decisions.append(line)
