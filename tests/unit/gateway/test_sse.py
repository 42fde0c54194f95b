"""The bounded relay: never more than `size` items ahead of a stalled reader; keep-alives; cancel on close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.gateway.sse import KEEPALIVE, relay, relay_batches, sse_event


async def test_relay_reads_at_most_size_items_ahead_of_a_stalled_reader() -> None:
    produced = 0

    async def upstream() -> AsyncIterator[int]:
        nonlocal produced
        for i in range(10_000):
            produced += 1
            yield i

    cancelled = []
    items = relay(upstream(), size=8, keepalive_s=5, cancel=lambda: cancelled.append(True))
    assert await anext(items) == 0
    for _ in range(1000):  # the reader stalls: let the pump run until it has filled the queue (bounded)
        if produced >= 8 + 1:
            break
        await asyncio.sleep(0)
    assert produced >= 8 + 1, "the pump must have run ahead of the stalled reader"
    for _ in range(100):  # and it may not run further, however long the reader stalls
        await asyncio.sleep(0)
    assert produced <= 8 + 3  # the queue, the item in hand, and the one the pump is blocked on
    await items.aclose()
    assert cancelled == [True]


async def test_keepalive_while_upstream_is_quiet_then_items_and_end() -> None:
    async def slow() -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        yield "a"

    got = [x async for x in relay(slow(), size=4, keepalive_s=0.01)]
    assert got[0] is KEEPALIVE and got[-1] == "a"


async def test_upstream_failure_reaches_the_reader_after_the_items() -> None:
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("upstream went away")

    got = []
    try:
        async for x in relay(broken(), size=4, keepalive_s=1):
            got.append(x)
    except RuntimeError as exc:
        assert "went away" in str(exc)
    else:
        raise AssertionError("no error")
    assert got == [1]


async def test_items_that_arrived_together_go_out_together_and_a_lone_one_at_once() -> None:
    """The chat stream writes one SSE chunk per batch: tokens that wait together are one batch; a lone token is a batch
    as soon as it arrives (the upstream holds the next one back until the reader has the first)."""
    first_read = asyncio.Event()

    async def upstream() -> AsyncIterator[str]:
        yield "lone"
        await first_read.wait()  # nothing more until the lone token is out: waiting for company would hang here
        for token in ("a", "b", "c"):
            yield token

    batches = relay_batches(upstream(), size=8, keepalive_s=5)
    assert await asyncio.wait_for(anext(batches), 5) == ["lone"]
    first_read.set()
    for _ in range(10):  # the pump puts the three while the reader is away
        await asyncio.sleep(0)
    assert await asyncio.wait_for(anext(batches), 5) == ["a", "b", "c"]
    assert [b async for b in batches] == []


def test_sse_event_format() -> None:
    assert sse_event("token", {"text": "hi"}) == b'event: token\ndata: {"text":"hi"}\n\n'
