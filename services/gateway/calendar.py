"""The weekly review's schedule: TESSERA_REVIEW_SCHEDULE ("sun 18:00", local time, or "off") and the timer that asks
for it over NATS. Every gateway instance runs the timer; one gateway of the queue group takes each request. The
request carries the run's key (the scheduled date): search claims the key once, so a request sent twice (a retry,
a second gateway instance) never writes two reviews."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import Awaitable, Callable

from shared.errors import ConfigError

log = logging.getLogger("tessera.gateway.review")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(r"^\s*(mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+([01]?\d|2[0-3]):([0-5]\d)\s*$", re.IGNORECASE)
#: After a failed request (no gateway answering yet), try again this often, for at most RETRY_FOR_S.
RETRY_S, RETRY_FOR_S = 60.0, 6 * 3600.0


def parse(spec: str) -> tuple[int, int, int] | None:
    """(weekday 0=Monday, hour, minute), or None for "off"; ConfigError for anything else."""
    if spec.strip().lower() in ("off", "none", ""):
        return None
    m = _SPEC.match(spec)
    if not m:
        raise ConfigError("TESSERA_REVIEW_SCHEDULE", f"{spec!r} is not a weekday and a time like 'sun 18:00' (or 'off')")
    return DAYS.index(m.group(1)[:3].lower()), int(m.group(2)), int(m.group(3))


def next_run(when: tuple[int, int, int], now: dt.datetime) -> dt.datetime:
    """The first time at or after ``now`` (an aware local time) on the weekday at hour:minute."""
    weekday, hour, minute = when
    day = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    day += dt.timedelta(days=(weekday - now.weekday()) % 7)
    return day if day >= now else day + dt.timedelta(days=7)


def run_key(at: dt.datetime) -> str:
    return f"weekly-{at:%Y-%m-%d}"


class ReviewTimer:
    def __init__(self, spec: str, request: Callable[[bytes], Awaitable[bytes]],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone()) -> None:
        self.when = parse(spec)
        self.request, self.clock = request, clock

    async def fire(self, at: dt.datetime) -> dict[str, object]:
        """Ask for the review of the run at ``at``, retrying while nobody answers; the reply."""
        payload = json.dumps({"key": run_key(at), "since_days": 7}).encode()
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RETRY_FOR_S
        while True:
            try:
                reply = json.loads(await self.request(payload) or b"{}")
                if "error" not in reply:
                    log.info("weekly review requested", extra={"key": run_key(at), **reply})
                    return dict(reply)
                log.warning("weekly review request failed: %s", reply["error"])
            except Exception as exc:  # noqa: BLE001 — boundary: one request of the timer; no responders, a timeout: retried
                log.warning("weekly review request not answered (%s); retrying in %.0f s", exc, RETRY_S)
            if loop.time() > give_up:
                return {"error": "no gateway wrote the review"}
            await asyncio.sleep(RETRY_S)

    async def run(self, stopping: asyncio.Event | None = None) -> None:
        """Fire at each scheduled time until ``stopping`` is set."""
        stop = stopping or asyncio.Event()

        async def nap(seconds: float) -> bool:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)
            return stop.is_set()

        if self.when is None:
            return
        while True:
            at = next_run(self.when, self.clock())
            while (left := (at - self.clock()).total_seconds()) > 0:
                if await nap(min(left, 60.0)):  # short naps: a changed clock (DST, suspend) is seen within a minute
                    return
            await self.fire(at)
            if await nap(61):  # past the minute, so the same run is not asked for twice
                return
