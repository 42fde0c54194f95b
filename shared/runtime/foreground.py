"""What people are doing across the mesh, so background work yields to them.

Foreground work says it is happening on ACTIVITY_SUBJECT (core NATS, fire and forget): chat while an answer is being
generated (at its start, a beat a second, and at its end), search at most twice a second while searches come in.
Every process that runs background work (embed's workers, chat's enrichers) hears it and keeps, per sender and
kind, until when that sender is busy. A beat that stops (a sender that died) lapses after ``BEAT_LAPSE_S``; a
search holds for ``SEARCH_HOLD_S`` after the last one, an answer for ``CHAT_LINGER_S`` after it ends (a follow-up
question usually comes within it).

Background work calls :meth:`Foreground.yield_to_people` before each step. It waits while any of the kinds it yields to
is busy (``max_wait_s`` bounds the wait of work that must not starve: embedding), and counts what it did in
``tessera_background_yields_total`` and ``tessera_background_paused`` (the gauge is 1 while it waits), so tests and
`tessera status` read the pauses from counters rather than from timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from nats.aio.client import Client as NATS

from shared.contracts import ACTIVITY_SUBJECT
from shared.runtime import metrics

log = logging.getLogger("tessera.foreground")
#: People's work (chat, search), and embedding, which outranks enrichment (an import is searchable before it is enriched).
KINDS = ("chat", "search", "embed")
BEAT_S = 1.0
BEAT_LAPSE_S = 3.0
CHAT_LINGER_S = 1.0
SEARCH_HOLD_S = 1.5
SEARCH_EVERY_S = 0.5
#: An embedding step announces itself, and enrichment waits this long after the last one. An enrichment's prefill cannot
#: be cut short, so it starts only once an import has really paused (with 3 s, imports ran 0.84-0.88x as fast with
#: enrichment on as off).
EMBED_HOLD_S = 10.0
POLL_S = 0.05
PUBLISH_TIMEOUT_S = 1.0


class Foreground:
    """One process's view of the people using the mesh, and its own foreground work announced to the others."""

    def __init__(self, nc: NATS | None, instance: str) -> None:
        self.nc, self.instance = nc, instance
        self.busy_until: dict[tuple[str, str], float] = {}  # (sender, kind) -> monotonic deadline
        self.active: dict[str, int] = dict.fromkeys(KINDS, 0)  # this process's own foreground work in progress
        self._last: dict[str, float] = {}  # when each often-said kind was last announced
        self._beat: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Future[None]] = set()
        self._sub: Any = None

    async def listen(self) -> None:
        if self.nc is not None and self._sub is None:
            self._sub = await self.nc.subscribe(ACTIVITY_SUBJECT, cb=self._heard)
            # the server knows of the subscription once this returns: an announcement another process makes after
            # listen() is heard (without it, a publish on another connection could reach the server first)
            await self.nc.flush()

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        if self._sub is not None:
            with contextlib.suppress(Exception):  # boundary: the connection may already be closed at shutdown
                await self._sub.unsubscribe()

    async def _heard(self, msg: Any) -> None:
        try:
            body = json.loads(msg.data)
            sender, kind, hold = str(body["sender"]), str(body["kind"]), float(body["hold_s"])
        except (ValueError, KeyError, TypeError):
            return
        if kind in KINDS and 0 <= hold <= 60:
            self.hold(sender, kind, hold)

    def hold(self, sender: str, kind: str, hold_s: float) -> None:
        self.busy_until[(sender, kind)] = time.monotonic() + hold_s

    # -- foreground ---------------------------------------------------------------------------------------------
    async def _say(self, kind: str, hold_s: float) -> None:
        """Announce, never waiting on NATS: the publish runs in a task of its own, bounded, so a question or a search
        is never held up by an announcement (a NATS outage costs only the announcement)."""
        self.hold(self.instance, kind, hold_s)
        if self.nc is None or not self.nc.is_connected:
            return
        task = asyncio.ensure_future(self._publish(json.dumps({"sender": self.instance, "kind": kind, "hold_s": hold_s}).encode()))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _publish(self, body: bytes) -> None:
        assert self.nc is not None
        with contextlib.suppress(Exception):  # boundary: a lost announcement only lets background work run sooner
            await asyncio.wait_for(self.nc.publish(ACTIVITY_SUBJECT, body), PUBLISH_TIMEOUT_S)

    async def _say_often(self, kind: str, hold_s: float) -> None:
        """Announce work that comes in many small pieces: at most one announcement per SEARCH_EVERY_S."""
        now = time.monotonic()
        if now - self._last.get(kind, -SEARCH_EVERY_S) >= SEARCH_EVERY_S:
            self._last[kind] = now
            await self._say(kind, hold_s)

    async def searched(self) -> None:
        """A search came in."""
        await self._say_often("search", SEARCH_HOLD_S)

    async def embedding(self) -> None:
        """Background embedding is working through a backlog: enrichment waits for it."""
        await self._say_often("embed", EMBED_HOLD_S)

    @contextlib.asynccontextmanager
    async def answering(self) -> AsyncIterator[None]:
        """An answer is being generated: announced at once, with a beat while it lasts and a linger at its end."""
        self.active["chat"] += 1
        await self._say("chat", BEAT_LAPSE_S)
        if self._beat is None or self._beat.done():
            self._beat = asyncio.create_task(self._beats())
        try:
            yield
        finally:
            self.active["chat"] -= 1
            if not self.active["chat"]:
                await self._say("chat", CHAT_LINGER_S)

    async def _beats(self) -> None:
        while self.active["chat"]:
            await asyncio.sleep(BEAT_S)
            if self.active["chat"]:
                await self._say("chat", BEAT_LAPSE_S)

    # -- background ---------------------------------------------------------------------------------------------
    def busy(self, kinds: Iterable[str] = ("chat", "search")) -> list[str]:
        """The kinds of foreground work going on now, anywhere in the mesh."""
        now, wanted = time.monotonic(), set(kinds)
        return sorted({kind for (_, kind), until in self.busy_until.items() if kind in wanted and until > now}
                      | {kind for kind in wanted if self.active.get(kind)})

    async def yield_to_people(self, worker: str, limits: Mapping[str, float | None]) -> float:
        """Wait while people do the kinds of work in ``limits``, each at most its limit in seconds (None: as long as
        it lasts); the seconds waited."""
        seen = set(self.busy(limits))
        if not seen:
            return 0.0
        for kind in seen:
            metrics.BACKGROUND_YIELDS.labels(worker, kind).inc()
        start = time.monotonic()
        metrics.BACKGROUND_PAUSED.labels(worker).set(1)
        try:
            while self._keeps_waiting(limits, time.monotonic() - start):  # deadlines, not an event: polled
                await asyncio.sleep(POLL_S)
                for kind in set(self.busy(limits)) - seen:  # what it waits for now, counted once per wait
                    metrics.BACKGROUND_YIELDS.labels(worker, kind).inc()
                    seen.add(kind)
        finally:
            metrics.BACKGROUND_PAUSED.labels(worker).set(0)
            metrics.BACKGROUND_PAUSED_SECONDS.labels(worker).inc(time.monotonic() - start)
        return time.monotonic() - start

    def _keeps_waiting(self, limits: Mapping[str, float | None], waited: float) -> bool:
        for kind in self.busy(limits):
            cap = limits[kind]
            if cap is None or waited < cap:
                return True
        return False
