"""The lease policy, driven with a virtual clock: no servers, no GPU."""

from __future__ import annotations

import random

import pytest

from services.scheduler.policy import GIB, Device, LeasePolicy, Priority, Refused

MIB = 1024**2


def policy(gib: float = 16, margin: int = 512 * MIB, aging_s: float = 2.0, devices: int = 1) -> LeasePolicy:
    size = int(gib * GIB)
    return LeasePolicy([Device(i, f"sim-{i}", size, size) for i in range(devices)], margin, aging_s)


def ask(p: LeasePolicy, rid: str, prio: Priority, nbytes: int, now: float, service: str = "", holder: str = "") -> None:
    p.request(rid, service or rid, holder or rid, prio, nbytes, ttl_s=30, now=now)


def test_never_more_than_budget_under_random_load() -> None:
    rng = random.Random(7)
    p = policy(gib=8, devices=2)
    now, peak = 0.0, 0
    for step in range(3000):
        now += rng.uniform(0.001, 0.05)
        roll = rng.random()
        if roll < 0.5:
            ask(p, f"r{step}", rng.choice(list(Priority)), rng.randint(1, 3 * GIB), now)
        elif roll < 0.8 and p.leases:
            p.release(rng.choice(list(p.leases)))
        elif p.waiters and roll < 0.85:
            p.withdraw(rng.choice(p.waiters).request_id, "test")
        p.expire(now)
        p.schedule(now)
        for dev in p.devices:
            assert p.granted(dev.index) <= dev.total - p.margin
            peak = max(peak, p.granted(dev.index))
    assert peak > 6 * GIB, "the load should have filled the devices"


def test_higher_class_is_served_first() -> None:
    p = policy(gib=4.5)  # budget 4 GiB
    ask(p, "hog", Priority.TENSOR_BATCH, 4 * GIB, 0)
    assert [g.waiter.request_id for g in p.schedule(0)] == ["hog"]
    ask(p, "tensor", Priority.TENSOR_BATCH, 2 * GIB, 0.1)
    ask(p, "bg", Priority.BACKGROUND_EMBEDDING, 2 * GIB, 0.2)
    ask(p, "chat", Priority.INTERACTIVE, 2 * GIB, 0.3)
    assert p.schedule(0.4) == []
    p.release(next(iter(p.leases)))
    assert [g.waiter.request_id for g in p.schedule(0.5)] == ["chat", "bg"]
    assert any(d.startswith("granted 2.00 GiB on cuda:0 to chat (interactive") for d in p.decisions)


def test_aging_lifts_a_starving_class() -> None:
    p = policy(gib=2.5, aging_s=1.0)  # budget 2 GiB: one grant at a time
    ask(p, "old-tensor", Priority.TENSOR_BATCH, 2 * GIB, 0)
    ask(p, "blocker", Priority.INTERACTIVE, 2 * GIB, 0)
    assert [g.waiter.request_id for g in p.schedule(0)] == ["blocker"]
    # Fresh interactive requests keep coming, but after 3 s the tensor batch ties with
    # them and its earlier arrival wins.
    ask(p, "chat-new", Priority.INTERACTIVE, 2 * GIB, 3.5)
    assert p.effective_priority(p.waiters[0], 3.5) == Priority.INTERACTIVE
    p.release(next(iter(p.leases)))
    assert [g.waiter.request_id for g in p.schedule(3.6)] == ["old-tensor"]


def test_fair_within_a_class() -> None:
    p = policy(gib=3.5)  # budget 3 GiB
    ask(p, "a1", Priority.BACKGROUND_EMBEDDING, 1 * GIB, 0, holder="A")
    ask(p, "a2", Priority.BACKGROUND_EMBEDDING, 1 * GIB, 0.1, holder="A")
    p.schedule(0.2)  # A now holds 2 GiB
    ask(p, "a3", Priority.BACKGROUND_EMBEDDING, 1 * GIB, 0.3, holder="A")
    ask(p, "b1", Priority.BACKGROUND_EMBEDDING, 1 * GIB, 0.4, holder="B")
    assert [g.waiter.request_id for g in p.schedule(0.5)] == ["b1"], "the holder with less goes first"


def test_no_backfill_past_a_waiter_that_does_not_fit() -> None:
    p = policy(gib=4.5)
    ask(p, "held", Priority.INTERACTIVE, 3 * GIB, 0)
    p.schedule(0)
    ask(p, "big", Priority.QUERY_EMBEDDING, 3 * GIB, 0.1)
    ask(p, "small", Priority.TENSOR_BATCH, 512 * MIB, 0.2)
    assert p.schedule(0.3) == [], "a small request must not jump a larger, higher one"


def test_expiry_reclaims_and_renewal_keeps() -> None:
    p = policy()
    ask(p, "crashy", Priority.TENSOR_BATCH, GIB, 0)
    ask(p, "alive", Priority.TENSOR_BATCH, GIB, 0)
    leases = {g.waiter.request_id: g.lease for g in p.schedule(0)}
    assert p.renew(leases["alive"].lease_id, 30, now=20) is not None
    gone = p.expire(31)
    assert [lease.service for lease in gone] == ["crashy"]
    assert list(p.leases) == [leases["alive"].lease_id]
    assert "expired" in p.decisions[-1]


def test_too_large_is_refused_at_once() -> None:
    p = policy(gib=1)
    with pytest.raises(Refused, match="largest device offers"):
        ask(p, "huge", Priority.TENSOR_BATCH, GIB, 0)
    assert p.waiters == []


def test_without_priorities_it_is_first_come_first_served() -> None:
    p = policy(gib=2.5)
    p.prioritise = False
    ask(p, "hog", Priority.INTERACTIVE, 2 * GIB, 0)
    p.schedule(0)
    ask(p, "tensor", Priority.TENSOR_BATCH, 2 * GIB, 0.1)
    ask(p, "chat", Priority.INTERACTIVE, 2 * GIB, 0.2)
    p.release(next(iter(p.leases)))
    assert [g.waiter.request_id for g in p.schedule(0.3)] == ["tensor"]
