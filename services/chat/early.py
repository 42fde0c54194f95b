"""An answer starts when its question is admitted, not when its stream opens.

StartChat hands out a QUIC ticket, and the caller then opens a stream with it. Waiting for that stream before taking a
slot and starting the prompt put the reply's trip back, the stream's opening and the ticket's check in front of every
first token (about 3 ms of the 12-15 the mesh added before the model started, measured with bench/chat.py).
:class:`EarlyStart` runs the answer up to its first event at once; the stream then gets that event and reads the rest
straight from the answer, so only the first event is fetched ahead and no queue sits between a token and its stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class EarlyStart(Generic[T]):
    """``items`` run up to their first item from :meth:`start` on, in a task of their own; :meth:`stream` yields that
    item, then the rest. :meth:`cancel` closes them when no stream comes (the ticket expired, or ``unclaimed_s``
    passed): their ``finally`` blocks run (an answer's slot goes back, its turn is stored as cancelled)."""

    def __init__(self, items: AsyncIterator[T], unclaimed_s: float) -> None:
        self._items, self.unclaimed_s = items, unclaimed_s
        self._first: asyncio.Future[T] | None = None
        self._settled = False  # streamed or cancelled: whichever came first owns the items
        self._closing: asyncio.Future[None] | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._first = asyncio.ensure_future(self._items.__anext__())
        # a caller that takes a ticket and never opens its stream holds a slot this long at most
        self._deadline = asyncio.get_running_loop().call_later(self.unclaimed_s, self.cancel)

    async def stream(self) -> AsyncGenerator[T, None]:
        if self._settled or self._first is None:
            raise RuntimeError("chat: this answer's stream was already taken or given up")
        self._settled = True
        if self._deadline is not None:
            self._deadline.cancel()
        try:
            try:
                first = await self._first
            except StopAsyncIteration:
                return
            yield first
            async for item in self._items:
                yield item
        finally:
            await self._aclose()

    def cancel(self) -> None:
        if self._settled:
            return
        self._settled = True
        if self._deadline is not None:
            self._deadline.cancel()
        if self._first is None:  # never started: nothing ran
            return
        if not self._first.done():
            self._first.cancel()  # raised inside the answer where it waits: it closes itself
            return
        if not self._first.cancelled():
            self._first.exception()  # retrieved: an answer that failed before anyone read it is not logged as lost
        self._closing = asyncio.ensure_future(self._aclose())

    async def _aclose(self) -> None:
        aclose: Any = getattr(self._items, "aclose", None)  # an async generator's finally blocks run now
        if aclose is not None:
            closing: Awaitable[None] = aclose()
            await closing
