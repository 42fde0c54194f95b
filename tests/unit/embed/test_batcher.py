"""The micro-batcher: callers arriving together share one encode call, each gets its own rows back."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.embed.batcher import MicroBatcher


def encoder(calls: list[list[str]]) -> object:
    def encode(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)

    return encode


async def test_concurrent_callers_share_a_batch_and_get_their_own_rows() -> None:
    calls: list[list[str]] = []
    b = MicroBatcher(encoder(calls), max_batch=16, max_wait_s=0.05)  # type: ignore[arg-type]
    b.start()
    try:
        a, c = await asyncio.gather(b.embed(["x", "yy"]), b.embed(["zzz"]))
    finally:
        await b.stop()
    assert calls == [["x", "yy", "zzz"]] and b.batches == 1
    assert a.tolist() == [[1.0, 0.0], [2.0, 1.0]] and c.tolist() == [[3.0, 2.0]]


async def test_a_full_batch_goes_without_waiting() -> None:
    calls: list[list[str]] = []
    b = MicroBatcher(encoder(calls), max_batch=2, max_wait_s=10.0)  # type: ignore[arg-type]
    b.start()
    try:
        out = await asyncio.wait_for(b.embed(["a", "b"]), timeout=2.0)
    finally:
        await b.stop()
    assert out.shape == (2, 2) and calls == [["a", "b"]]


async def test_a_failed_encode_reaches_every_caller_of_the_batch_and_the_next_batch_works() -> None:
    state = {"fail": True}

    def encode(texts: list[str]) -> np.ndarray:
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("out of memory")
        return np.zeros((len(texts), 1), dtype=np.float32)

    b = MicroBatcher(encode, max_batch=8, max_wait_s=0.05)
    b.start()
    try:
        results = await asyncio.gather(b.embed(["a"]), b.embed(["b"]), return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert (await b.embed(["c"])).shape == (1, 1)
    finally:
        await b.stop()


async def test_a_cancelled_caller_is_left_out_of_the_batch() -> None:
    calls: list[list[str]] = []
    b = MicroBatcher(encoder(calls), max_batch=8, max_wait_s=0.1)  # type: ignore[arg-type]
    b.start()
    try:
        gone = asyncio.create_task(b.embed(["gone"]))
        await asyncio.sleep(0)
        kept = asyncio.create_task(b.embed(["kept"]))
        await asyncio.sleep(0.01)
        gone.cancel()
        assert (await kept).shape == (1, 2)
        with pytest.raises(asyncio.CancelledError):
            await gone
    finally:
        await b.stop()
    assert calls == [["kept"]]
