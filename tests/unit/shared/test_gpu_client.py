from __future__ import annotations

import pytest

from services.chat.model import layers_granted, offload_plan
from shared.gen.tessera.v1 import scheduler_pb2
from shared.runtime.gpu import on_gpu, tile_batch_size


def test_tile_batches_follow_the_grant() -> None:
    assert tile_batch_size(10 * 1024**2, 1024**2, 64) == 10
    assert tile_batch_size(10 * 1024**3, 1024**2, 64) == 64
    assert tile_batch_size(1, 1024**2, 64) == 1
    with pytest.raises(ValueError):
        tile_batch_size(1, 0, 4)


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
