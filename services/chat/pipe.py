"""The bounded hand-over of tokens from the model thread to the event loop; no I/O."""

from __future__ import annotations

import asyncio
import threading
import time

#: Put by the model thread after its last token.
END = object()
#: How often a model thread blocked on a full pipe looks at its cancel flag and the stall deadline.
WAKE_S = 0.2


class TokenPipe:
    """Model thread → event loop, bounded: the thread blocks while the reader is ``size`` tokens behind.

    A put does not wait for the event loop: it takes a place (a semaphore of ``size``), schedules the hand-over and
    returns, so the next token decodes while the loop is busy elsewhere (before, each token waited for the loop to
    take it). The reader gives the place back as it takes the token. A reader that takes nothing for ``stall_s`` is
    given up on: the pipe cancels, and the model thread stops at its next token.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, stall_s: float) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()  # bounded by ``room``, not by itself
        self.room = threading.Semaphore(size)
        self.cancel = threading.Event()
        self.stall_s = stall_s
        self.stalled = False
        self.produced = 0  # tokens handed to the pipe (a cancelled answer keeps its count)

    def put(self, item: object) -> bool:
        """From the model thread; False when the reader is gone (stop generating)."""
        give_up = time.monotonic() + self.stall_s
        while not self.cancel.is_set():
            if self.room.acquire(timeout=WAKE_S):
                try:
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
                except RuntimeError:  # the loop is closing
                    return False
                return True
            if time.monotonic() > give_up:
                self.stalled = True
                self.cancel.set()
        return False

    async def get(self) -> object:
        """The next item (a token's text or END), waiting for it."""
        item = await self.queue.get()
        self.room.release()
        return item

    def ready(self) -> list[object]:
        """Every item already handed over, without waiting (coalescing: tokens ready together go out together)."""
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
            self.room.release()
        return items
