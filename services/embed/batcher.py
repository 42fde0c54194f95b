"""Dynamic micro-batching: concurrent Embed calls share one model pass. No I/O.

Callers put their texts in and await their vectors; a single loop takes what is
queued, waits up to ``max_wait_s`` for more while the batch is below ``max_batch``
texts, encodes once, and hands each caller its slice. The queue depth is visible.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future[np.ndarray] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class MicroBatcher:
    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_batch: int, max_wait_s: float) -> None:
        self.encode, self.max_batch, self.max_wait_s = encode, max(1, max_batch), max(0.0, max_wait_s)
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.batches = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def embed(self, texts: list[str]) -> np.ndarray:
        job = _Job(texts)
        await self.queue.put(job)
        return await job.future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            size = len(jobs[0].texts)
            deadline = loop.time() + self.max_wait_s
            while size < self.max_batch:
                try:
                    job = await asyncio.wait_for(self.queue.get(), timeout=max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                jobs.append(job)
                size += len(job.texts)
            live = [j for j in jobs if not j.future.cancelled()]
            if not live:
                continue
            try:
                vectors = await asyncio.to_thread(self.encode, [t for j in live for t in j.texts])
            except Exception as exc:  # noqa: BLE001 — boundary: one batch; the failure goes to every caller waiting on it
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)
                continue
            self.batches += 1
            pos = 0
            for j in live:
                if not j.future.done():
                    j.future.set_result(vectors[pos:pos + len(j.texts)])
                pos += len(j.texts)
