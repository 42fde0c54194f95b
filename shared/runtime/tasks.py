"""Background tasks' one ending: wait for them until a deadline, then cancel what is left."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def finish_by(tasks: Iterable[asyncio.Future[Any]], timeout: float, *, cancelled_wait: float = 1.0) -> int:
    """Wait for ``tasks`` up to ``timeout`` seconds, then cancel the ones still running and give them
    ``cancelled_wait`` seconds to unwind; how many had to be cancelled."""
    pending = {t for t in tasks if not t.done()}
    if not pending:
        return 0
    _done, pending = await asyncio.wait(pending, timeout=max(0.0, timeout))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=cancelled_wait)
    return len(pending)
