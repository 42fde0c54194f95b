"""GPU scheduler under simulated load: chat, embedding and tensor work competing
for one simulated 16 GiB device for 2 minutes of virtual time.

The load drives the scheduler's own LeasePolicy (the code the service runs) with a
virtual clock: Poisson arrivals per class, hold times drawn per class, a policy pass
every 250 ms as the service's reaper does. The same arrivals are replayed with
priorities off (first come, first served) for comparison. Last line: JSON.

    make bench-gpu-sim            # or: python bench/gpu_sim.py --seconds 120 --seed 1
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
from dataclasses import dataclass

from services.scheduler.policy import GIB, Device, LeasePolicy, Priority

MIB = 1024**2


@dataclass(frozen=True)
class Workload:
    name: str
    priority: Priority
    rate_per_s: float
    nbytes: int
    hold_s: tuple[float, float]


WORKLOADS = (
    Workload("chat", Priority.INTERACTIVE, 0.6, int(1.5 * GIB), (2.0, 8.0)),          # a generation's KV cache
    Workload("query_embedding", Priority.QUERY_EMBEDDING, 4.0, 256 * MIB, (0.05, 0.2)),
    Workload("background_embedding", Priority.BACKGROUND_EMBEDDING, 0.6, 2 * GIB, (1.0, 3.0)),
    Workload("tensor_batch", Priority.TENSOR_BATCH, 0.6, 3 * GIB, (1.0, 4.0)),
)
CLASS = {w.priority: w.name for w in WORKLOADS}


def arrivals(seconds: float, seed: int) -> list[tuple[float, Workload, float]]:
    rng = random.Random(seed)
    out = []
    for w in WORKLOADS:
        t = rng.expovariate(w.rate_per_s)
        while t < seconds:
            out.append((t, w, rng.uniform(*w.hold_s)))
            t += rng.expovariate(w.rate_per_s)
    return sorted(out, key=lambda a: a[0])


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def simulate(load: list[tuple[float, Workload, float]], capacity: int, margin: int, prioritise: bool) -> dict[str, object]:
    policy = LeasePolicy([Device(0, "simulated-0", capacity, capacity)], margin, aging_s=2.0, prioritise=prioritise)
    events: list[tuple[float, int, str, object]] = []
    seq = 0
    for t, w, hold in load:
        events.append((t, seq, "arrive", (w, hold)))
        seq += 1
    end = load[-1][0] if load else 0.0
    tick = 0.0
    while tick <= end + 60:
        events.append((tick, seq, "tick", None))
        seq += 1
        tick += 0.25
    heapq.heapify(events)
    holds: dict[str, float] = {}
    waits: dict[str, list[float]] = {w.name: [] for w in WORKLOADS}
    peak, busy_area, last_t, granted_now = 0, 0.0, 0.0, 0
    while events:
        now, eseq, kind, data = heapq.heappop(events)
        busy_area += granted_now * (now - last_t)
        last_t = now
        if kind == "arrive":
            w, hold = data  # type: ignore[misc]
            rid = f"r{eseq}"
            holds[rid] = hold
            policy.request(rid, w.name, f"{w.name}-{eseq % 4}", w.priority, w.nbytes, ttl_s=3600, now=now)
        elif kind == "release":
            policy.release(str(data))
        if kind == "tick" and not policy.waiters and not policy.leases and now > end:
            break
        for grant in policy.schedule(now):
            waits[CLASS[grant.waiter.priority]].append((now - grant.waiter.arrived_at) * 1000)
            heapq.heappush(events, (now + holds.pop(grant.waiter.request_id), seq, "release", grant.lease.lease_id))
            seq += 1
        granted_now = policy.granted(0)
        peak = max(peak, granted_now)
    budget = capacity - margin
    return {
        "peak_granted_bytes": peak,
        "p95_wait_ms": {name: round(percentile(v, 0.95), 1) for name, v in waits.items()},
        "p50_wait_ms": {name: round(percentile(v, 0.50), 1) for name, v in waits.items()},
        "utilization": round(busy_area / (budget * last_t), 3) if last_t else 0.0,
        "granted": sum(len(v) for v in waits.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="virtual seconds of arrivals (default 120)")
    parser.add_argument("--gib", type=float, default=16.0, help="simulated device memory (default 16)")
    parser.add_argument("--margin-mib", type=int, default=512, help="safety margin (default 512, as the service)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    capacity, margin = int(args.gib * GIB), args.margin_mib * MIB
    load = arrivals(args.seconds, args.seed)
    with_p = simulate(load, capacity, margin, prioritise=True)
    without = simulate(load, capacity, margin, prioritise=False)
    demand = sum(w.rate_per_s * w.nbytes * sum(w.hold_s) / 2 for w in WORKLOADS) / (capacity - margin)
    print(f"{len(load)} requests over {args.seconds:.0f} virtual s; offered load {demand:.0%} of the {(capacity - margin) / GIB:.1f} GiB budget")
    for label, run in (("priorities", with_p), ("first come, first served", without)):
        print(f"{label}: peak {run['peak_granted_bytes'] / GIB:.2f} GiB of {capacity / GIB:.0f} GiB, utilization {run['utilization']:.0%}")
        for name in CLASS.values():
            print(f"  {name:22s} p50 {run['p50_wait_ms'][name]:8.1f} ms   p95 {run['p95_wait_ms'][name]:8.1f} ms")  # type: ignore[index]
    peak = max(int(with_p["peak_granted_bytes"]), int(without["peak_granted_bytes"]))  # type: ignore[call-overload]
    assert peak <= capacity - margin, "oversubscribed"
    print(json.dumps({
        "capacity_bytes": capacity, "budget_bytes": capacity - margin, "peak_granted_bytes": with_p["peak_granted_bytes"],
        "peak_granted_bytes_no_priority": without["peak_granted_bytes"], "never_exceeded": peak <= capacity - margin,
        "p95_wait_ms": with_p["p95_wait_ms"], "p95_wait_ms_no_priority": without["p95_wait_ms"],
        "utilization": with_p["utilization"], "utilization_no_priority": without["utilization"],
        "requests": len(load), "simulated_s": args.seconds,
    }))


if __name__ == "__main__":
    main()
