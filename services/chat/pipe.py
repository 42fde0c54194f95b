"""The bounded hand-over of tokens from the model thread to the event loop; no I/O."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

#: Put by the model thread after its last token.
END = object()


class TokenPipe:
    """Model thread → event loop, bounded: the thread blocks while the reader is ``size`` tokens behind.

    A reader that takes nothing for ``stall_s`` is given up on: the pipe cancels,
    and the model thread stops at its next token.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, stall_s: float) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue(size)
        self.cancel = threading.Event()
        self.stall_s = stall_s
        self.stalled = False
        self.produced = 0  # tokens handed to the pipe (a cancelled answer keeps its count)

    def put(self, item: object) -> bool:
        """From the model thread; False when the reader is gone (stop generating)."""
        give_up = time.monotonic() + self.stall_s
        while not self.cancel.is_set():
            try:
                fut = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
            except RuntimeError:  # the loop is closing
                return False
            try:
                fut.result(timeout=0.2)
                return True
            except concurrent.futures.TimeoutError:
                if not fut.cancel():
                    return True  # it went in after all
            if time.monotonic() > give_up:
                self.stalled = True
                self.cancel.set()
        return False
