"""The slot pool: FIFO hand-over, a bounded line, cancelled waiters leave no hole."""

from __future__ import annotations

import asyncio

import pytest

from services.chat.slots import QueueFull, SlotPool


async def test_waiters_are_served_in_order_and_the_line_is_bounded() -> None:
    pool = SlotPool(["a"], depth=2)
    held = await pool.acquire()
    order: list[str] = []

    async def wait(name: str) -> None:
        item = await pool.acquire()
        order.append(name)
        pool.release(item)

    w1, w2 = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    assert pool.waiting == 2
    with pytest.raises(QueueFull) as err:
        await pool.acquire()
    assert err.value.depth == 2 and err.value.retry_after_s >= 0.5 and "queue depth 2" in str(err.value)
    pool.release(held)
    await asyncio.gather(w1, w2)
    assert order == ["first", "second"] and pool.busy == 0


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    pool = SlotPool([1], depth=1)
    held = await pool.acquire()
    waiter = asyncio.create_task(pool.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert pool.waiting == 0
    pool.check()  # room again
    pool.release(held)
    assert pool.busy == 0 and await pool.acquire() == 1


async def test_a_free_slot_whose_cache_holds_the_prompt_is_preferred() -> None:
    """Of the free slots, the one ``prefer`` scores highest (the longest cached prefix); the first of equals otherwise."""
    cached = {"a": 0, "b": 120, "c": 40}
    pool: SlotPool[str] = SlotPool(["a", "b", "c"], depth=2)
    assert await pool.acquire(prefer=cached.__getitem__) == "b"
    assert await pool.acquire(prefer=lambda _: 0) == "a"
    pool.release("a")
    pool.release("b")
    assert await pool.acquire() == "c"  # without a preference: the longest free
