"""A fixed set of model slots behind an explicit, bounded FIFO queue; no I/O.

There is no global lock around the model: each slot is its own model instance,
requests wait in line for any free one, and when ``depth`` requests are already
waiting the next is refused at once with an estimate of when to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from shared.errors import ResourceExhausted

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(ResourceExhausted):
    """Every slot is busy and the waiting line is at its depth."""

    def __init__(self, busy: int, waiting: int, depth: int, retry_after_s: float) -> None:
        self.busy, self.waiting, self.depth, self.retry_after_s = busy, waiting, depth, retry_after_s
        super().__init__(f"chat: all {busy} model slots are busy and {waiting} requests are already waiting "
                         f"(queue depth {depth}); retry in about {retry_after_s:.1f} s", retry_after=retry_after_s)


class SlotPool(Generic[T]):
    def __init__(self, slots: list[T], depth: int) -> None:
        if not slots:
            raise ValueError("a slot pool needs at least one slot")
        self.size = len(slots)
        self.depth = depth
        self._free: deque[T] = deque(slots)
        self._waiters: deque[asyncio.Future[T]] = deque()
        self._mean_hold_s = 2.0  # until measured
        self._since: dict[int, float] = {}

    @property
    def busy(self) -> int:
        return self.size - len(self._free)

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    def retry_after_s(self) -> float:
        """Rough time until a newcomer would get a slot: the line ahead, served by every slot."""
        return max(0.5, self._mean_hold_s * (self.waiting + 1) / self.size)

    def check(self) -> None:
        """Raise QueueFull now if a request arriving now would be refused (before costly preparation)."""
        if not (self._free and not self.waiting) and self.waiting >= self.depth:
            raise QueueFull(self.busy, self.waiting, self.depth, self.retry_after_s())

    def release(self, item: T) -> None:
        """Give a slot back; the longest waiter gets it."""
        started = self._since.pop(id(item), None)
        if started is not None:
            self._mean_hold_s = 0.8 * self._mean_hold_s + 0.2 * (time.monotonic() - started)
        self._give(item)

    async def acquire(self, prefer: Callable[[T], int] | None = None) -> T:
        """A free slot, after waiting in line if need be; QueueFull when the line is full. With ``prefer``, of the free
        slots the one it scores highest (the one whose KV cache holds the longest part of the prompt)."""
        item = await self._take(prefer)
        self._since[id(item)] = time.monotonic()
        return item

    async def _take(self, prefer: Callable[[T], int] | None) -> T:
        if self._free and not self.waiting:
            if prefer is not None and len(self._free) > 1:
                best = max(range(len(self._free)), key=lambda i: prefer(self._free[i]))  # the first of equals: the longest free
                item = self._free[best]
                del self._free[best]  # by position: two slots may compare equal (the same model file and settings)
                return item
            return self._free.popleft()
        self.check()
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._give(fut.result())  # handed over just as the waiter left
            raise
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    def _give(self, item: T) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(item)
                return
        self._free.append(item)


async def in_model_thread(call: Callable[[threading.Event], R]) -> R:
    """``call(cancel)`` in a thread (a model call on a slot the caller holds). If the caller is cancelled, the call is
    told to stop and awaited, through any further cancel, before the cancellation goes on: only then may its slot go
    to someone else."""
    cancel = threading.Event()
    fut = asyncio.ensure_future(asyncio.to_thread(call, cancel))
    try:
        return await asyncio.shield(fut)
    except BaseException:
        cancel.set()
        while not fut.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([fut])
        raise
