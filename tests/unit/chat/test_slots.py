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


async def test_slots_that_compare_equal_are_never_handed_out_twice() -> None:
    """Two slots of one model file are equal as values; the preferred one must leave the free list, not its twin.
    (Removing by equality handed one llama.cpp context to two answers at once: a GGML_ASSERT killed chat.)"""

    class Twin:
        def __init__(self, cached: int) -> None:
            self.cached = cached

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Twin)

        __hash__ = None  # type: ignore[assignment]

    first, second = Twin(0), Twin(90)
    pool: SlotPool[Twin] = SlotPool([first, second], depth=2)
    got = await pool.acquire(prefer=lambda t: t.cached)
    assert got is second
    other = await pool.acquire(prefer=lambda t: t.cached)
    assert other is first and pool.busy == 2


def test_two_loaded_models_are_never_equal() -> None:
    from services.chat.backends import RemoteModel
    from services.chat.model import ChatModel

    assert ChatModel.__eq__ is object.__eq__ and RemoteModel.__eq__ is object.__eq__, \
        "slots are told apart by identity: a value __eq__ makes two contexts of one file the same slot"
