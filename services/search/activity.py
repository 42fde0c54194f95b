"""Search's activity log, which search owns: every hit a search returned and every query with how well it was
answered (query_log, search_hits), and chat's unanswered questions heard on QUESTION_SUBJECT. Written in
batches off the query's path; read for staleness and knowledge gaps; pruned to TESSERA_SEARCH_LOG_DAYS and
TESSERA_SEARCH_LOG_ROWS.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from shared.contracts import UnansweredQuestion
from shared.gen.tessera.v1 import search_pb2
from shared.runtime.db import fetch_dicts
from shared.runtime.service import Runtime

log = logging.getLogger("tessera.search.activity")
#: A note nobody changed or found in a search for %(days)s days (documents d).
STALE = ("d.updated_at < now() - make_interval(days => %(days)s) AND NOT EXISTS (SELECT 1 FROM search_hits h"
         " WHERE h.document_id = d.id AND h.at >= now() - make_interval(days => %(days)s))")
#: How often a pass of the log prunes it even when few rows were written.
PRUNE_S = 600.0


@dataclass
class Logged:
    """A search or a question as the log keeps it."""

    kind: str
    query: str
    project: str
    hits: int
    top_score: float
    answered: bool
    documents: list[tuple[str, int]]


def logged_search(req: search_pb2.SearchRequest, reply: search_pb2.SearchResponse, floor: float) -> Logged:
    """A search as the log keeps it: answered when it found something close enough (the vector signal's cosine at
    least the chat's relevance floor; any hit when there was no vector signal)."""
    cosines = [s.score for h in reply.hits for s in h.signals if s.name == "vector" and s.rank]
    top = max(cosines, default=0.0)
    answered = bool(reply.hits) and (top >= floor if req.mode != search_pb2.SEARCH_MODE_LEXICAL else True)
    return Logged("search", req.query[:500], req.filters.project, len(reply.hits), top, answered,
                  [(h.source.document_id, i + 1) for i, h in enumerate(reply.hits)])




def question_logged(q: UnansweredQuestion) -> Logged:
    """Chat's unanswered question: a knowledge gap for the weekly review."""
    return Logged("question", q.question[:500], q.project, 0, q.best, False, [])


class Activity:
    def __init__(self, rt: Runtime) -> None:
        self.rt, self.pool, self.settings = rt, rt.db, rt.settings
        self._buffer: list[Logged] = []
        self._since_prune = 0  # log rows written since the last prune
        self._last_prune = 0.0

    # -- the log ----------------------------------------------------------------------------------------------------
    def record(self, entry: Logged) -> None:
        """Queue a search for the log; written within a second, in batches, off the query's path."""
        if len(self._buffer) < 10_000:  # the database is away: drop rather than grow without bound
            self._buffer.append(entry)

    async def flush(self) -> None:
        rows, self._buffer = self._buffer, []
        if not rows:
            return
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany("INSERT INTO query_log (kind, query, project, hits, top_score, answered) VALUES (%s,%s,%s,%s,%s,%s)",
                                  [(r.kind, r.query, r.project, r.hits, r.top_score, r.answered) for r in rows])
            hits = [(uuid.UUID(d), rank) for r in rows for d, rank in r.documents]
            await cur.executemany("INSERT INTO search_hits (document_id, rank) VALUES (%s, %s)", hits)
        self._since_prune += len(hits) + len(rows)

    async def prune(self) -> int:
        """Delete log rows older than TESSERA_SEARCH_LOG_DAYS, and the oldest beyond TESSERA_SEARCH_LOG_ROWS per table
        (a flood of searches cannot grow the log without bound within the retention)."""
        days, cap = self.settings.knowledge.search_log_days, self.settings.knowledge.search_log_rows
        self._since_prune = 0
        async with self.pool.connection() as conn:
            a = (await conn.execute("DELETE FROM search_hits WHERE at < now() - make_interval(days => %s)", (days,))).rowcount
            b = (await conn.execute("DELETE FROM query_log WHERE at < now() - make_interval(days => %s)", (days,))).rowcount
            a += (await conn.execute("DELETE FROM search_hits WHERE at <= (SELECT at FROM search_hits ORDER BY at DESC OFFSET %s LIMIT 1)",
                                     (cap,))).rowcount
            b += (await conn.execute("DELETE FROM query_log WHERE id <= (SELECT id FROM query_log ORDER BY id DESC OFFSET %s LIMIT 1)",
                                     (cap,))).rowcount
        return a + b

    async def write_round(self) -> None:
        """One pass (every second): the buffered rows written, and the log pruned every PRUNE_S or after many rows."""
        await self.flush()
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_prune > PRUNE_S or self._since_prune > self.settings.knowledge.search_log_rows // 10:
            self._last_prune = loop.time()
            await self.prune()

    # -- stale notes ------------------------------------------------------------------------------------------------
    async def stale(self, project: str, days: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Documents nobody changed or found in a search for ``days`` days, the longest untouched first; (rows, total)."""
        where = f"d.type <> 'review' AND (%(p)s = '' OR d.project = %(p)s) AND {STALE}"
        args = {"p": project, "days": days, "n": limit}
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(conn, f"SELECT d.id, d.title, d.path, d.updated_at, (SELECT max(at) FROM search_hits h"
                                           f" WHERE h.document_id = d.id) AS last_hit FROM documents d WHERE {where}"
                                           " ORDER BY d.updated_at, d.path LIMIT %(n)s", args)
            total = await (await conn.execute(f"SELECT count(*) FROM documents d WHERE {where}", args)).fetchone()
        return rows, int(total[0]) if total else 0

