"""People, their keys and the audit log (the gateway owns users, api_keys and audit_log; migration 0012).

A person's key is ``tsk_`` and 43 random characters; only its SHA-256 is kept, with its first characters to tell
keys apart. A key resolves to a :class:`~shared.runtime.principal.Principal` (the user's name and role, the key's
projects) for a few seconds, so a revoked key or a disabled user stops working within ``CACHE_S``.

The audit log is written off the request's path: a bounded queue that one task drains; a full queue drops the entry
and counts it (the log says how many), so a flood of denied requests cannot hold requests up.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import secrets as _random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg_pool
from psycopg_pool import AsyncConnectionPool

from shared.errors import InvalidArgument, NotFound, Unavailable
from shared.runtime import db
from shared.runtime.principal import PROJECT, ROLES, USER_NAME, Principal

log = logging.getLogger("tessera.gateway.principals")

KEY_PREFIX = "tsk_"
CACHE_S = 5.0
AUDIT_QUEUE = 10_000


@dataclass(frozen=True)
class AuditEntry:
    principal: str
    key_id: str
    surface: str
    action: str  # write | read | denied
    method: str
    object: str
    project: str
    status: int
    request_id: str


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check_projects(projects: list[str] | None) -> list[str] | None:
    if projects is None:
        return None
    bad = [p for p in projects if not PROJECT.fullmatch(p)]
    if bad:
        raise InvalidArgument(f"keys: {bad[0][:80]!r} is not a project name (letters, digits, '.', '-', '_' and spaces)")
    if not projects:
        raise InvalidArgument("keys: name at least one project, or none at all for every project")
    return sorted(set(projects))


class PrincipalStore:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self._audit: asyncio.Queue[AuditEntry] = asyncio.Queue(AUDIT_QUEUE)
        self.audit_dropped = 0

    # --- keys at the edge -------------------------------------------------------------------------------------------
    async def resolve(self, key: str) -> Principal | None:
        """The principal of a person's key, or None (unknown, revoked, or its user disabled)."""
        if not key.startswith(KEY_PREFIX):
            return None
        d = digest(key)
        return await self._lookup(d, "k.digest", d)

    async def resolve_id(self, key_id: str) -> Principal | None:
        """The principal of a key by its id (a session cookie names it), or None (revoked, disabled, or no such key)."""
        try:
            kid = uuid.UUID(key_id)
        except ValueError:
            return None
        return await self._lookup(b"id:" + kid.bytes, "k.id", kid)

    async def _lookup(self, cache_key: bytes, column: str, value: object) -> Principal | None:
        """A live key's principal by one of its columns, kept ``CACHE_S``; Unavailable while PostgreSQL is away."""
        now = time.monotonic()
        hit = self._cache.get(cache_key)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        try:
            rows = await db.read(self.pool, "SELECT u.name, u.role, k.projects, k.id::text FROM api_keys k JOIN users u ON u.id = k.user_id "
                                            f"WHERE {column} = %s AND k.revoked_at IS NULL AND NOT u.disabled", (value,))
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError):
            raise Unavailable("the gateway cannot read its keys right now (PostgreSQL is away); retry") from None
        found = Principal(rows[0][0], rows[0][1], tuple(rows[0][2]) if rows[0][2] is not None else None, rows[0][3]) if rows else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[cache_key] = (now, found)
        return found

    def forget(self) -> None:
        self._cache.clear()

    # --- administration ---------------------------------------------------------------------------------------------
    async def add_user(self, name: str, role: str) -> dict[str, Any]:
        if not USER_NAME.fullmatch(name):
            raise InvalidArgument(f"users: {name[:80]!r} is not a user name (lower-case letters, digits, '.', '-', '_'; 64 at most)")
        if role not in ROLES:
            raise InvalidArgument(f"users: the role must be one of {', '.join(ROLES)}, not {role[:40]!r}")
        async with self.pool.connection() as conn:
            try:
                await conn.execute("INSERT INTO users (id, name, role) VALUES (%s, %s, %s)", (uuid.uuid4(), name, role))
            except psycopg.errors.UniqueViolation:
                raise InvalidArgument(f"users: {name!r} exists already") from None
        return {"name": name, "role": role, "disabled": False}

    async def users(self) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            rows = await db.fetch_dicts(conn, "SELECT u.name, u.role, u.disabled, u.created_at, "
                                              "count(k.id) FILTER (WHERE k.revoked_at IS NULL) AS keys "
                                              "FROM users u LEFT JOIN api_keys k ON k.user_id = u.id GROUP BY u.id ORDER BY u.name")
        return [{**r, "created_at": r["created_at"].isoformat()} for r in rows]

    async def set_disabled(self, name: str, disabled: bool) -> dict[str, Any]:
        async with self.pool.connection() as conn:
            row = await (await conn.execute("UPDATE users SET disabled = %s WHERE name = %s RETURNING role", (disabled, name))).fetchone()
        if row is None:
            raise NotFound(f"users: no user {name[:80]!r}")
        self.forget()
        return {"name": name, "role": row[0], "disabled": disabled}

    async def create_key(self, user: str, projects: list[str] | None) -> dict[str, Any]:
        """A new key for ``user``, returned once (only its digest is kept)."""
        scoped = check_projects(projects)
        key = KEY_PREFIX + _random.token_urlsafe(32)
        key_id = uuid.uuid4()
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT id, disabled FROM users WHERE name = %s", (user,))).fetchone()
            if row is None:
                raise NotFound(f"keys: no user {user[:80]!r}; add one first (tessera users add NAME --role reader|writer|admin)")
            if row[1]:
                raise InvalidArgument(f"keys: {user!r} is disabled")
            await conn.execute("INSERT INTO api_keys (id, user_id, digest, prefix, projects) VALUES (%s, %s, %s, %s, %s)",
                               (key_id, row[0], digest(key), key[:len(KEY_PREFIX) + 6], scoped))
        return {"id": str(key_id), "user": user, "projects": scoped, "key": key}

    async def keys(self, user: str = "") -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            rows = await db.fetch_dicts(conn, "SELECT k.id::text AS id, u.name AS user, k.prefix, k.projects, k.created_at, k.revoked_at "
                                              "FROM api_keys k JOIN users u ON u.id = k.user_id WHERE %s = '' OR u.name = %s "
                                              "ORDER BY k.created_at", (user, user))
        return [{**r, "created_at": r["created_at"].isoformat(),
                 "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None} for r in rows]

    async def revoke(self, key_id: str) -> dict[str, Any]:
        try:
            kid = uuid.UUID(key_id)
        except ValueError:
            raise InvalidArgument(f"keys: {key_id[:80]!r} is not a key id (tessera keys list shows them)") from None
        async with self.pool.connection() as conn:
            row = await (await conn.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING prefix",
                                            (kid,))).fetchone()
        if row is None:
            raise NotFound(f"keys: no key {key_id!r}")
        self.forget()
        return {"id": key_id, "prefix": row[0], "revoked": True}

    # --- audit ------------------------------------------------------------------------------------------------------
    def record(self, entry: AuditEntry) -> None:
        try:
            self._audit.put_nowait(entry)
        except asyncio.QueueFull:
            self.audit_dropped += 1

    async def write_audit(self, stopping: asyncio.Event) -> None:
        """Drain the queue into audit_log, many entries per statement."""
        while not stopping.is_set():
            first = await self._audit.get()
            batch = [first]
            while not self._audit.empty() and len(batch) < 500:
                batch.append(self._audit.get_nowait())
            try:
                async with self.pool.connection() as conn, conn.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO audit_log (principal, key_id, surface, action, method, object, project, status, request_id) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [(e.principal, e.key_id, e.surface, e.action, e.method, e.object[:500], e.project, e.status, e.request_id)
                         for e in batch])
            except (psycopg.Error, OSError) as exc:  # the database is away: these entries are lost, and said so
                self.audit_dropped += len(batch)
                log.warning("audit: %d entries not written (%s)", len(batch), type(exc).__name__)
            for _ in batch:
                self._audit.task_done()
            if self.audit_dropped:
                log.warning("audit: %d entries dropped so far (queue full or database away)", self.audit_dropped)
                self.audit_dropped = 0

    async def flush(self, within_s: float = 5.0) -> None:
        """Wait until every queued entry is written (at most ``within_s``; the audit route reads after it)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._audit.join(), within_s)

    async def audit(self, since: dt.datetime, limit: int = 1000, action: str = "") -> list[dict[str, Any]]:
        async with self.pool.connection() as conn:
            rows = await db.fetch_dicts(conn, "SELECT id, at, principal, key_id, surface, action, method, object, project, status, "
                                              "request_id FROM audit_log WHERE at >= %s AND (%s = '' OR action = %s) "
                                              "ORDER BY id DESC LIMIT %s", (since, action, action, limit))
        return [{**r, "at": r["at"].isoformat()} for r in rows]

