from __future__ import annotations

import pytest

from services.chat.model import layers_granted, offload_plan
from shared.gen.tessera.v1 import scheduler_pb2
from shared.runtime.gpu import on_gpu, renew_in


def test_cpu_grants_mean_cpu() -> None:
    assert not on_gpu(scheduler_pb2.Lease(device="cpu"))
    assert on_gpu(scheduler_pb2.Lease(device="cuda:1"))


def test_chat_offload_asks_for_what_its_layers_need(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tmp_path / "m.gguf"
    model.write_bytes(b"x" * 30_000)
    wanted, nbytes = offload_plan(model, layers=30, wanted=-1, context=100)
    assert wanted == 30 and nbytes == 30 * (1000 + 100 * 2048)
    assert layers_granted(nbytes, model, 30, -1, 100) == 30
    assert layers_granted(nbytes // 3, model, 30, -1, 100) == 10
    assert offload_plan(model, layers=30, wanted=0, context=100) == (0, 0)


def test_renewal_follows_the_leases_own_expiry() -> None:
    """The holder renews at a third of what is left of the lease, whatever TTL the scheduler's settings give it."""
    lease = scheduler_pb2.Lease(lease_id="l")
    lease.expires_at.FromNanoseconds(int(1000.0 * 1e9) + 30 * 10**9)
    assert renew_in(lease, now=1000.0) == pytest.approx(10.0)
    lease.expires_at.FromNanoseconds(int(1000.0 * 1e9) + 3 * 10**9)
    assert renew_in(lease, now=1000.0) == pytest.approx(1.0)
    assert renew_in(lease, now=2000.0) == 0.05  # already past: renew at once
