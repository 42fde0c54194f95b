"""Migrations and the pool against a real PostgreSQL with pgvector."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import psycopg
import psycopg.rows
import pytest

from shared.errors import DependencyError
from shared.runtime import db
from shared.runtime.config import Settings
from shared.runtime.cpu import mesh_cores, postgres_parallel_workers


async def test_migrations_apply_once_even_when_instances_race(infra: Settings, tmp_path: Path) -> None:
    (tmp_path / "0001_t.sql").write_text("CREATE TABLE race_probe (id int);")
    (tmp_path / "0002_t.sql").write_text("INSERT INTO race_probe VALUES (1);")
    other = infra.with_overrides(database_url=infra.database_url.rsplit("/", 1)[0] + "/race")
    async with await db.connect_once(infra, "superuser") as conn:  # a setup step: only the superuser makes databases
        await conn.execute("DROP DATABASE IF EXISTS race")
        await conn.execute("CREATE DATABASE race OWNER tessera_owner")
    results = await asyncio.gather(*(db.migrate(other, tmp_path) for _ in range(4)))
    assert sorted(name for r in results for name in r) == ["0001_t.sql", "0002_t.sql"]
    async with await db.connect_once(other, "owner") as conn:
        rows = await (await conn.execute("SELECT count(*) FROM race_probe")).fetchone()
    assert rows == (1,)
    (tmp_path / "0002_t.sql").write_text("INSERT INTO race_probe VALUES (2);")
    with pytest.raises(db.MigrationError, match="changed after it was applied"):
        await db.migrate(other, tmp_path)


async def test_pool_speaks_pgvector(infra: Settings) -> None:
    pool = await db.open_pool(infra)
    try:
        assert (await db.ping(pool)).startswith("postgres 18")
        vec = np.arange(384, dtype=np.float32) / 384
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT %s::vector(384) <=> %s::vector(384)", (vec, vec))).fetchone()
            assert row is not None and abs(row[0]) < 1e-6
            tables = {r[0] for r in await (await conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).fetchall()}
        assert {"documents", "chunks", "links", "ingest_jobs", "conversations", "schema_migrations"} <= tables
    finally:
        await pool.close()


async def test_unreachable_postgres_names_the_setting(infra: Settings) -> None:
    dead = infra.with_overrides(database_url="postgresql://tessera:pw@127.0.0.1:1/tessera", db_connect_timeout_s=1.0)
    with pytest.raises(DependencyError) as err:
        await db.connect_once(dead)
    assert "TESSERA_DATABASE_URL" in str(err.value) and "pw" not in str(err.value)


async def test_the_read_pool_answers_in_one_round_trip_and_outlives_its_connections(infra: Settings) -> None:
    """open_read_pool: autocommit (no transaction is left open, so no COMMIT round trip) and no check as a connection is
    handed out; when the database dropped its connections (a restart), a plain execute on one fails, and ``read``
    replaces them and answers."""
    reads = await db.open_read_pool(infra.with_overrides(db_pool_min=2), "read-pool-test")
    try:
        assert await db.read(reads, "SELECT 1 + %s", (1,)) == [(2,)]
        async with reads.connection() as conn:
            assert conn.autocommit
            await conn.execute("SELECT 1")
            assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        await reads.wait()  # both connections open and idle
        async with await db.connect_once(infra, "runtime") as same_role:  # as a restart would, the role's own backends
            killed = await (await same_role.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                                " WHERE application_name = 'read-pool-test'")).fetchone()
        assert killed == (2,)
        await asyncio.sleep(0.2)
        with pytest.raises(psycopg.OperationalError):  # what a search met after a restart without read's recovery
            async with reads.connection() as conn:
                await conn.execute("SELECT 1")
        rows = await db.read(reads, "SELECT %s::text AS t", ("back",), row_factory=psycopg.rows.dict_row)
        assert rows == [{"t": "back"}]
    finally:
        await reads.close()


async def test_postgres_takes_its_share_of_the_cores_for_parallel_workers(infra: Settings) -> None:
    """The embedded server runs a statement's parallel workers only as the mesh's CPU budget allows (none on a machine
    of under four cores, where PostgreSQL's default of two would run beside the search and model threads)."""
    async with await db.connect_once(infra, "owner") as conn:
        row = await (await conn.execute("SHOW max_parallel_workers_per_gather")).fetchone()
    assert row is not None and int(row[0]) == postgres_parallel_workers(mesh_cores(infra.core.cpu_cores))
