"""Server-sent events and the bounded relay between an upstream stream and a slow reader; no I/O.

:func:`relay` reads the upstream in its own task into a queue of ``size``
items. When the reader falls behind, the queue fills, the task stops reading,
and the upstream (a gRPC stream, with its own flow control) stops too: the
gateway never holds more than ``size`` items per client. While the upstream
says nothing for ``keepalive_s`` (a long prefill), the reader gets KEEPALIVE
so that proxies and clients see the connection is alive. Closing the relay
(the client went away) cancels the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

T = TypeVar("T")
KEEPALIVE = object()
_END = object()

#: Headers of every event stream: no caching, and no buffering by nginx-style proxies.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def sse_event(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def sse_data(data: Any) -> bytes:
    """An unnamed event (the OpenAI stream format)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


SSE_KEEPALIVE = b": keep-alive\n\n"


class RelayStats:
    """The most items any relay held at once: the bound the tests check."""

    high_water = 0


async def relay(upstream: AsyncIterable[T], size: int, keepalive_s: float,
                cancel: Callable[[], object] | None = None) -> AsyncIterator[T | object]:
    """Items of ``upstream`` (KEEPALIVE in quiet spells); ``cancel`` stops the upstream when the reader leaves."""
    async with contextlib.aclosing(relay_batches(upstream, size, keepalive_s, cancel)) as batches:
        async for batch in batches:
            for item in batch:
                yield item


def _with_ready(queue: asyncio.Queue[Any], first: Any) -> tuple[list[Any], bool]:
    """``first`` and every item already waiting behind it, up to the end mark; (those items, whether the end came)."""
    batch = [first]
    while batch[-1] is not _END and not queue.empty():
        batch.append(queue.get_nowait())
    ended = batch[-1] is _END
    return (batch[:-1] if ended else batch), ended


async def relay_batches(upstream: AsyncIterable[T], size: int, keepalive_s: float,
                        cancel: Callable[[], object] | None = None) -> AsyncGenerator[list[T | object], None]:
    """As :func:`relay`, a batch at a time: every item already waiting goes out together (one write for the tokens that
    arrived while the last write was under way); a lone item goes out at once, never waiting for company."""
    # The queue is bounded by ``room``: a place is given back once the batch that held its item has been written, so
    # the items waiting and the batch being written are ``size`` at most together.
    queue: asyncio.Queue[Any] = asyncio.Queue()
    room = asyncio.Semaphore(size)
    failure: list[BaseException] = []
    held = 0

    async def pump() -> None:
        nonlocal held
        try:
            async for item in upstream:
                await room.acquire()
                queue.put_nowait(item)
                held += 1
                RelayStats.high_water = max(RelayStats.high_water, held)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 — boundary: the relay task; the failure is handed to the reader, which decides what to say
            failure.append(exc)
        queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            if queue.empty():
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=keepalive_s)
                except TimeoutError:
                    yield [KEEPALIVE]
                    continue
            else:  # (no timer for an item that is already there)
                first = queue.get_nowait()
            batch, ended = _with_ready(queue, first)
            if batch:
                yield batch
                held -= len(batch)
                for _ in batch:
                    room.release()
            if ended:
                if failure:
                    raise failure[0]
                return
    finally:
        if cancel is not None:
            cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        aclose = getattr(upstream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
