"""Scheduled snapshots (TESSERA_SNAPSHOT_EVERY, TESSERA_SNAPSHOT_KEEP): one ingest instance at a time, chosen by a
PostgreSQL advisory lock, makes a snapshot when the newest is older than the period, then deletes those beyond the
ones kept (shared/ops/snapshot.py does the work, in a thread)."""

from __future__ import annotations

import asyncio
import logging

from shared.ops import snapshot
from shared.runtime.service import Runtime

log = logging.getLogger("tessera.ingest")

#: The advisory lock the instances take turns on (any other number than the migrations').
LOCK_KEY = 0x5A0B5407
#: How often an instance looks whether a snapshot is due.
CHECK_S = 60.0


class SnapshotSchedule:
    def __init__(self, rt: Runtime, every_s: float) -> None:
        self.rt, self.every_s = rt, every_s

    async def tick(self) -> None:
        async with self.rt.db.connection() as conn:
            taken = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))).fetchone()
            if not taken or not taken[0]:
                return  # another instance is at it
            try:
                if await asyncio.to_thread(snapshot.due, self.rt.settings, self.every_s):
                    path = await asyncio.to_thread(snapshot.create, self.rt.settings, None, snapshot.configured_secret(self.rt.settings))
                    log.info("ingest: scheduled snapshot %s", path)
                for gone in await asyncio.to_thread(snapshot.prune, self.rt.settings, self.rt.settings.knowledge.snapshot_keep):
                    log.info("ingest: snapshot %s deleted (TESSERA_SNAPSHOT_KEEP=%d)", gone, self.rt.settings.knowledge.snapshot_keep)
            except (snapshot.SnapshotError, OSError) as exc:  # the next tick tries again; the failure is in the log
                log.error("ingest: the scheduled snapshot failed: %s", exc)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
