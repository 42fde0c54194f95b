"""PostgreSQL: an async psycopg 3 pool with pgvector types, and versioned migrations.

Migrations are ``shared/runtime/migrations/NNNN_name.sql`` files applied in order at
start, each in its own transaction, under an advisory lock so that many
instances starting at once apply each file exactly once. A file changed after it
was applied is refused (its checksum is recorded).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from shared.errors import DependencyError, TesseraError
from shared.runtime import principal, secrets
from shared.runtime.config import Settings

log = logging.getLogger("tessera.db")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Iterative scans keep filtered vector searches from starving (pgvector 0.8); run inside the transaction.
VECTOR_SESSION = "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 200"
_LOCK_KEY = 0x7E55E7A  # advisory lock id for migrations
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class MigrationError(TesseraError):
    """The migration files and the database disagree."""


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    """(version, file name, sql) in order; names must be NNNN_words.sql and versions unique."""
    out = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"db: migration file {path.name!r} is not named NNNN_name.sql")
        out.append((int(m.group(1)), path.name, path.read_text()))
    versions = [v for v, _, _ in out]
    if len(set(versions)) != len(versions):
        raise MigrationError("db: two migration files share a version number")
    return out


redact = secrets.redact


async def connect_once(settings: Settings, role: secrets.PgRole = "runtime") -> psycopg.AsyncConnection:
    """One connection, as the runtime role (the services' own) unless a setup step names another."""
    try:
        return await psycopg.AsyncConnection.connect(secrets.database_url(settings, role),
                                                     connect_timeout=max(1, int(settings.infra.db_connect_timeout_s)),
                                                     autocommit=True)
    except (psycopg.Error, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DependencyError(f"db: cannot reach TESSERA_DATABASE_URL={redact(settings.infra.database_url)} ({reason})") from None


async def migrate(settings: Settings, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the migrations this database lacks, as the owner role; returns the names applied."""
    files = migration_files(directory)
    applied_now: list[str] = []
    async with await connect_once(settings, "owner") as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            rows = await (await conn.execute("SELECT version, name, checksum FROM schema_migrations")).fetchall()
            done = {v: (n, c) for v, n, c in rows}
            for version, name, sql in files:
                checksum = hashlib.sha256(sql.encode()).hexdigest()
                if version in done:
                    if done[version][1] != checksum:
                        raise MigrationError(f"db: migration {name} was changed after it was applied; add a new file instead")
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                                       (version, name, checksum))
                applied_now.append(name)
                log.info("migration applied", extra={"migration": name})
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


async def require_schema(settings: Settings, directory: Path = MIGRATIONS_DIR) -> None:
    """The schema has every migration this code knows (read as the runtime role); else a sentence saying who applies them."""
    want = {v for v, _, _ in migration_files(directory)}
    async with await connect_once(settings) as conn:
        try:
            rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
        except psycopg.errors.UndefinedTable:
            rows = []
    missing = sorted(want - {r[0] for r in rows})
    if missing:
        raise DependencyError(f"db: the database lacks migration {missing[0]:04d} and {len(missing) - 1} more; `tessera up` "
                              "applies them as the owner role (the services' runtime role may not change the schema)")


#: What each pooled connection's principal settings are now, by id(conn). A new connection has none set, which the
#: policies read as the system's; ``_configure`` records that for every new connection, so a reused id never
#: inherits another connection's entry.
_held: dict[int, tuple[str, str, str]] = {}
_SYSTEM = principal.settings_for(principal.SYSTEM)


async def _configure(conn: psycopg.AsyncConnection) -> None:
    await register_vector_async(conn)
    _held[id(conn)] = _SYSTEM


async def carry_principal(conn: psycopg.AsyncConnection) -> bool:
    """Give an idle connection the settings of the principal this task acts for (principal.current), unless it holds
    them already; True when a statement went to the server. Row-level security (migration 0012) reads them."""
    want = principal.settings_for(principal.current.get())
    if _held.get(id(conn)) == want:
        return False
    if conn.autocommit:
        await conn.execute(principal.SET_SQL, want)
    else:
        await conn.set_autocommit(True)
        try:
            await conn.execute(principal.SET_SQL, want)
        finally:
            with contextlib.suppress(Exception):
                await conn.set_autocommit(False)
    _held[id(conn)] = want
    return True


async def check_and_carry(conn: psycopg.AsyncConnection) -> None:
    """The pool's check as a connection is handed out: alive (a dead one is replaced instead of failing the request
    that drew it), and carrying the caller's principal. Setting a principal is the liveness check when one is sent."""
    if not await carry_principal(conn):
        await AsyncConnectionPool.check_connection(conn)


def vector_session_options(settings: Settings) -> str:
    """Startup options that give every pooled connection pgvector's search settings, so a vector search is one
    statement (no transaction of SET LOCALs): iterative scans keep filtered searches from starving, and HNSW's breadth
    is ``search.ef_search``. pgvector takes these as placeholders until its library loads."""
    ef = int(settings.search.ef_search)
    return "-c hnsw.iterative_scan=relaxed_order" + (f" -c hnsw.ef_search={ef}" if ef > 0 else "")


def application_name(instance_id: str) -> str:
    """What a process's connections call themselves in pg_stat_activity (PostgreSQL keeps 63 bytes)."""
    return instance_id.encode()[:63].decode(errors="ignore")


async def open_pool(settings: Settings, instance_id: str = "") -> AsyncConnectionPool:
    """Migrate, then open a pool whose connections know the vector type.

    With ``instance_id``, every connection carries it as its application_name, so other
    processes can tell from pg_stat_activity whether this one is still alive.
    """
    if "postgres" in settings.infra.embedded:
        await require_schema(settings)  # `tessera up` migrated it as the owner; the runtime role cannot
    else:
        await migrate(settings)
    # a connection is checked as it is handed out: after a database restart, dead ones are replaced instead of failing the
    # request that drew them
    return await _open(settings, instance_id, check=check_and_carry)


async def _open(settings: Settings, instance_id: str, *, check: Any = None, autocommit: bool = False) -> AsyncConnectionPool:
    """A pool of the runtime role whose connections know the vector type and carry pgvector's search settings."""
    kwargs: dict[str, object] = {"connect_timeout": max(1, int(settings.infra.db_connect_timeout_s)),
                                 "options": vector_session_options(settings), "autocommit": autocommit}
    if instance_id:
        kwargs["application_name"] = application_name(instance_id)
    pool = AsyncConnectionPool(secrets.database_url(settings), min_size=settings.infra.db_pool_min, max_size=settings.infra.db_pool_max,
                               configure=_configure, open=False, timeout=settings.infra.db_connect_timeout_s, kwargs=kwargs,
                               check=check, reconnect_timeout=60.0)
    await pool.open(wait=True, timeout=settings.infra.db_connect_timeout_s)
    return pool


async def open_read_pool(settings: Settings, instance_id: str = "") -> AsyncConnectionPool:
    """A pool for a hot path's single-statement reads (run them with ``read``), beside ``open_pool``'s (which migrated
    or checked the schema): autocommit, so a read is one round trip instead of three (BEGIN rides with the statement,
    then COMMIT), and no check as a connection is handed out (one more round trip each); ``read`` recovers from a
    database restart instead."""
    return await _open(settings, instance_id, autocommit=True)


async def fetch(conn: psycopg.AsyncConnection, sql: str, params: Any = None, *, binary: bool = False,
                row_factory: Any = None) -> list[Any]:
    """The rows of one statement (``row_factory``: for this statement only, the connection's own stays)."""
    if row_factory is None:
        return await (await conn.execute(sql, params, binary=binary)).fetchall()
    async with conn.cursor(row_factory=row_factory, binary=binary) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def read(pool: AsyncConnectionPool, sql: str, params: Any = None, *, binary: bool = False,
               row_factory: Any = None) -> list[Any]:
    """The rows of one statement on a pool from ``open_read_pool``. A connection that died with the database (a
    restart) fails it once: the pool then checks its idle connections, replacing the dead, and the statement runs again."""
    for attempt in (1, 2):
        async with pool.connection() as conn:
            try:
                await carry_principal(conn)
                return await fetch(conn, sql, params, binary=binary, row_factory=row_factory)
            except psycopg.OperationalError:
                if attempt == 2 or not conn.broken:  # a cancelled or timed-out statement is not run again
                    raise
        await pool.check()
    raise AssertionError("unreachable")


async def ping(pool: AsyncConnectionPool) -> str:
    async with pool.connection(timeout=2.0) as conn:
        row = await (await conn.execute("SELECT current_setting('server_version')")).fetchone()
    return f"postgres {row[0] if row else '?'}"


async def fetch_dicts(conn: psycopg.AsyncConnection, sql: str, params: Any = None) -> list[dict[str, Any]]:
    """Rows as dicts, without changing the (pooled) connection's row factory."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()
