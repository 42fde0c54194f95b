"""An answer started when its ticket is handed out (services/chat/early.py): it runs up to its first event before any
stream asks, the stream gets every event in order, and an answer nobody comes for is closed (its finally blocks run)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.chat.early import EarlyStart


class Answer:
    """An answer's events, with what ran of it."""

    def __init__(self, events: int, *, hold: asyncio.Event | None = None) -> None:
        self.events, self.hold = events, hold
        self.steps: list[str] = []

    async def run(self) -> AsyncIterator[int]:
        self.steps.append("started")
        try:
            for i in range(self.events):
                if i == 0 and self.hold is not None:
                    await self.hold.wait()  # e.g. a slot to wait for, a prefill
                self.steps.append(f"event {i}")
                yield i
        finally:
            self.steps.append("closed")


async def test_the_first_event_is_ready_before_the_stream_asks_and_every_event_follows_in_order() -> None:
    answer = Answer(4)
    early = EarlyStart(answer.run(), unclaimed_s=30)
    early.start()
    for _ in range(5):
        await asyncio.sleep(0)
    assert answer.steps == ["started", "event 0"]  # ahead of any stream, and no further than its first event
    assert [e async for e in early.stream()] == [0, 1, 2, 3]
    assert answer.steps[-1] == "closed"


async def test_an_answer_nobody_comes_for_is_closed_while_it_waits_or_once_it_has_its_first_event() -> None:
    waiting = Answer(3, hold=asyncio.Event())
    early = EarlyStart(waiting.run(), unclaimed_s=30)
    early.start()
    await asyncio.sleep(0.01)
    early.cancel()  # the ticket expired while the answer waited (for a slot, say)
    await asyncio.sleep(0.01)
    assert waiting.steps == ["started", "closed"]

    ready = Answer(3)
    early = EarlyStart(ready.run(), unclaimed_s=30)
    early.start()
    await asyncio.sleep(0.01)
    early.cancel()  # its first event was ready and nobody took it
    await asyncio.sleep(0.01)
    assert ready.steps == ["started", "event 0", "closed"]
    with pytest.raises(RuntimeError, match="already taken or given up"):
        [e async for e in early.stream()]


async def test_an_unclaimed_answer_closes_by_itself_and_a_claimed_one_does_not() -> None:
    unclaimed = Answer(3)
    early = EarlyStart(unclaimed.run(), unclaimed_s=0.05)
    early.start()
    await asyncio.sleep(0.3)
    assert unclaimed.steps == ["started", "event 0", "closed"]

    claimed = Answer(3, hold=asyncio.Event())
    early = EarlyStart(claimed.run(), unclaimed_s=0.05)
    early.start()
    stream = early.stream()
    first = asyncio.ensure_future(stream.__anext__())  # the stream came, and waits for the first event
    await asyncio.sleep(0.3)
    assert claimed.hold is not None and claimed.steps == ["started"]  # the deadline passed and it is still running
    claimed.hold.set()
    assert await first == 0 and [e async for e in stream] == [1, 2]


async def test_a_reader_that_leaves_closes_the_answer() -> None:
    answer = Answer(10)
    early = EarlyStart(answer.run(), unclaimed_s=30)
    early.start()
    stream = early.stream()
    assert await stream.__anext__() == 0 and await stream.__anext__() == 1
    await stream.aclose()
    assert answer.steps == ["started", "event 0", "event 1", "closed"]


async def test_an_answer_that_fails_before_its_first_event_fails_its_stream() -> None:
    async def failing() -> AsyncIterator[int]:
        raise ValueError("no slot")
        yield 0  # pragma: no cover

    early = EarlyStart(failing(), unclaimed_s=30)
    early.start()
    await asyncio.sleep(0.01)
    with pytest.raises(ValueError, match="no slot"):
        [e async for e in early.stream()]
