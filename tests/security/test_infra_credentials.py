"""The embedded servers of the session's mesh: a local user or process without the generated credentials gets nothing,
and the services' own database role can neither change the schema nor run programs (issue 28)."""

from __future__ import annotations

import asyncio
import stat
from urllib.parse import urlsplit

import nats
import psycopg
import pytest
import redis
from helpers import ServiceProcess

from shared.runtime import secrets
from shared.runtime.config import Settings


def test_postgres_without_the_password_refuses_every_role(infra: Settings) -> None:
    """Hole: the embedded PostgreSQL ran with `trust` auth on loopback, as a superuser: any local user could connect."""
    port = urlsplit(infra.infra.database_url).port
    for user in ("tessera", "postgres", "tessera_owner", "tessera_backup"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"postgresql://{user}@127.0.0.1:{port}/tessera", connect_timeout=5)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://{user}:guess@127.0.0.1:{port}/tessera", connect_timeout=5)


def test_the_runtime_role_owns_nothing_and_runs_no_program(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    """The services' role reads and writes the tables, and that is all: no superuser (COPY ... TO PROGRAM ran a shell),
    no DDL, no other database."""
    with psycopg.connect(secrets.database_url(infra), autocommit=True) as conn:
        row = conn.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == (False, False, False)
        assert conn.execute("SELECT count(*) FROM documents").fetchone() is not None  # its work: read and write tables
        owned = conn.execute("SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
                             ).fetchone()
        assert owned == (0,)
        for statement, words in (("COPY (SELECT 1) TO PROGRAM 'id'", "permission denied|must be superuser|pg_execute_server_program"),
                                 ("CREATE TABLE intruder (x int)", "permission denied"),
                                 ("ALTER TABLE documents ADD COLUMN intruder int", "must be owner"),
                                 ("DROP TABLE chunks", "must be owner"),
                                 ("CREATE DATABASE intruder", "permission denied")):
            with pytest.raises(psycopg.Error, match=words):
                conn.execute(statement)
    with psycopg.connect(secrets.database_url(infra, "backup"), autocommit=True) as conn:  # snapshots read everything, write nothing
        assert conn.execute("SELECT count(*) FROM documents").fetchone() is not None
        with pytest.raises(psycopg.Error, match="permission denied"):
            conn.execute("DELETE FROM documents")


async def test_nats_without_credentials_is_refused(infra: Settings) -> None:
    """Hole: NATS had no credentials: any local process could read every event and register as a service."""
    with pytest.raises(Exception, match="Authorization Violation"):
        await asyncio.wait_for(nats.connect(infra.infra.nats_url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=1), 10)
    url = urlsplit(infra.infra.nats_url)
    with pytest.raises(Exception, match="Authorization Violation"):
        await asyncio.wait_for(nats.connect(f"nats://tessera:guess@{url.hostname}:{url.port}", connect_timeout=2, allow_reconnect=False,
                                            max_reconnect_attempts=1), 10)
    nc = await nats.connect(secrets.nats_url(infra))
    assert nc.is_connected
    await nc.close()


def test_valkey_without_the_password_is_refused(infra: Settings) -> None:
    """Hole: Valkey had no password (and protected mode off): any local process could read or poison the cache."""
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(infra.infra.redis_url, socket_timeout=5).get("anything")
    url = urlsplit(infra.infra.redis_url)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host=url.hostname, port=url.port, password="guess", socket_timeout=5).ping()
    assert redis.Redis.from_url(secrets.redis_url(infra), socket_timeout=5).ping()


def test_every_secret_is_a_private_file(infra: Settings) -> None:
    folder = secrets.folder(infra)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = {p.name for p in folder.iterdir() if p.is_file()}
    assert {"admin-key", "session-key", "postgres-superuser", "postgres-owner", "postgres-runtime", "postgres-backup", "nats-password",
            "redis-password"} <= names
    for name in names:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    for conf in (infra.path("infra", "nats", "nats.conf"), infra.path("infra", "redis", "valkey.conf")):
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600, conf  # they hold the passwords: not on a command line `ps` shows


def test_a_data_directory_made_before_credentials_is_upgraded(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An existing install (trust auth, its bootstrap superuser named like the runtime role, tables it owns) starts with
    credentials: trust is gone, the runtime role is no superuser, the owner has the tables, and the notes are kept."""
    from helpers import make_settings

    from shared.ops.infra import Postgres, embedded_servers, stop_all

    settings = make_settings(tmp_path_factory.mktemp("old-install"), TESSERA_EMBEDDED="postgres")
    pg = next(s for s in embedded_servers(settings) if isinstance(s, Postgres))
    pg.pgdata.mkdir(parents=True, exist_ok=True)
    pg._prepare_root_user()
    pg._run([pg._bin("initdb"), "-D", str(pg.pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "tessera"])  # as before
    pg._run([pg._bin("pg_ctl"), "-D", str(pg.pgdata), "-w", "-l", str(pg.logfile), "-o",
             f"-c listen_addresses=127.0.0.1 -p {pg.port} -c unix_socket_directories=''", "start"])
    try:
        pg._run([pg._bin("createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "tessera", "tessera"])
        with psycopg.connect(f"postgresql://tessera@127.0.0.1:{pg.port}/tessera", autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
            conn.execute("CREATE TABLE old_notes (id serial PRIMARY KEY, body text)")
            conn.execute("INSERT INTO old_notes (body) VALUES ('kept across the upgrade')")
        pg._run([pg._bin("pg_ctl"), "-D", str(pg.pgdata), "-w", "-m", "fast", "stop"])
        from shared.ops.infra import start_all

        start_all(settings)
        with psycopg.connect(secrets.database_url(settings)) as conn:
            assert conn.execute("SELECT body FROM old_notes").fetchone() == ("kept across the upgrade",)
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            owners = {r[0] for r in conn.execute("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall()}
            assert owners == {"tessera_owner"}
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"postgresql://tessera@127.0.0.1:{pg.port}/tessera", connect_timeout=5)
    finally:
        stop_all(settings)
