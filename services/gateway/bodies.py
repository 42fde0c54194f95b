"""Reading a request body the gateway refuses, so the connection it came on stays usable."""

from __future__ import annotations

import asyncio
import time

from starlette.types import Receive

#: A refused body is read to its end (and dropped) up to this much, for at most this long, before the answer.
DISCARD_BYTES = 16 * 1024 * 1024
DISCARD_S = 5.0


async def discard_body(receive: Receive) -> None:
    """Read (and drop) the rest of a request's body before answering it, within bounds.

    Answering first loses the connection either way: a server that closes with request
    bytes unread makes TCP reset it (the client can lose the answer), and Hypercorn
    closes a keep-alive connection whose answer ended before the body had arrived,
    without saying so, so the client's next request on it finds it gone.
    """
    budget, deadline = DISCARD_BYTES, time.monotonic() + DISCARD_S
    while budget > 0 and time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(receive(), deadline - time.monotonic())
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        budget -= len(message.get("body", b""))
