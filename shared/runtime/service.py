"""The process entry point every service uses: settings → logging → runtime → serve.

A service module provides ``async def setup(rt: Runtime) -> None`` that
registers its servicers and dependencies and loads what it needs; this module
binds the port, connects the dependencies the service asked for (failing fast
with a one-line error naming the setting), runs ``setup``, marks the node ready
and serves until SIGTERM, then drains and closes everything.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from psycopg_pool import AsyncConnectionPool

from shared.errors import ConfigError, TesseraError
from shared.runtime import bus, db, metrics, tracing
from shared.runtime.cache import Cache
from shared.runtime.channels import Channels
from shared.runtime.config import Settings, load_settings
from shared.runtime.foreground import Foreground
from shared.runtime.host import VERSION, ServiceHost
from shared.runtime.logs import setup_logging

log = logging.getLogger("tessera.service")

#: What a service may ask the runtime to connect before its setup runs.
NEEDS = ("postgres", "nats", "redis")


@dataclass
class Runtime:
    """What a service's setup gets: settings, its gRPC host and connected dependencies."""

    settings: Settings
    service: str
    instance_id: str
    host: ServiceHost
    channels: Channels
    pool: AsyncConnectionPool | None = None
    nc: NATS | None = None
    cache: Cache | None = None
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def db(self) -> AsyncConnectionPool:
        assert self.pool is not None, f"{self.service} did not ask for postgres"
        return self.pool

    @property
    def nats(self) -> NATS:
        assert self.nc is not None, f"{self.service} did not ask for nats"
        return self.nc

    @functools.cached_property
    def foreground(self) -> Foreground:
        """People's chats and searches across the mesh (announced by this process, heard once it listens)."""
        return Foreground(self.nc, self.instance_id)


def quic_port(base: int) -> int:
    """A QUIC data-plane port: 0 stays 0 (any free port, announced in tickets); pm2 instance i binds base+i."""
    return base + int(os.environ.get("NODE_APP_INSTANCE", "0") or 0) if base else 0


def metrics_port(settings: Settings, service: str) -> int:
    """The /metrics port of this process: the service's setting, plus 10 per pm2 instance; 0: none."""
    base = settings.metrics_port(service)
    return base + 10 * int(os.environ.get("NODE_APP_INSTANCE", "0") or 0) if base else 0


def _closer(server: asyncio.Server) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        server.close()

    return close


async def _flush_traces() -> None:
    await asyncio.to_thread(tracing.flush)


def instance_id(service: str) -> str:
    """pm2 numbers instances in NODE_APP_INSTANCE; the pid makes it unique on the host."""
    return f"{service}-{socket.gethostname()}-{os.environ.get('NODE_APP_INSTANCE', '0')}-{os.getpid()}"


async def start(settings: Settings, service: str, needs: tuple[str, ...],
                setup: Callable[[Runtime], Awaitable[None]]) -> Runtime:
    """Bind, connect, set up and mark ready; the caller then serves until stopped."""
    host = ServiceHost(settings, service, instance_id(service))
    rt = Runtime(settings, service, host.instance_id, host, Channels(settings))
    await host.bind()
    metrics.add_rpc_collector(host.metrics)
    tracing.setup(settings, service)
    try:
        if port := metrics_port(settings, service):
            server = await metrics.serve(settings.core.host, port)
            if server is not None:
                host.on_close(_closer(server))
        if "nats" in needs:
            rt.nc = await bus.connect(settings, rt.instance_id)
            rt.channels.nc = rt.nc
            nc = rt.nc
            host.add_dependency("nats", lambda: _nats_ok(nc))
            micro = await bus.register(nc, service, rt.instance_id, host.grpc_addr, VERSION)
            host.on_close(nc.drain)
            host.on_stop_accepting(micro.stop)
        if "postgres" in needs:
            rt.pool = await db.open_pool(settings, rt.instance_id)
            pool = rt.pool
            host.add_dependency("postgres", lambda: db.ping(pool))
            metrics.watch_pool(pool)
            host.on_close(pool.close)
        if "redis" in needs:
            rt.cache = Cache(settings, service)
            host.add_dependency("redis", rt.cache.ping, required=False)
            host.on_close(rt.cache.close)
        host.on_close(rt.channels.close)
        host.on_close(_flush_traces)
        await setup(rt)
    except BaseException:
        await host.shutdown()
        raise
    await host.mark_ready()
    return rt


async def _nats_ok(nc: NATS) -> str:
    if not nc.is_connected:
        raise ConnectionError("not connected")
    return f"nats {nc.connected_url.netloc if nc.connected_url else ''}"


async def _serve(service: str, needs: tuple[str, ...], setup: Callable[[Runtime], Awaitable[None]], settings: Settings) -> None:
    rt = await start(settings, service, needs, setup)
    await rt.host.serve_until_stopped()


def main(service: str, needs: tuple[str, ...], setup: Callable[[Runtime], Awaitable[None]]) -> None:
    """Run a service process; exits 2 on bad configuration, 1 on an unreachable dependency."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.core.log_level, settings.core.log_format, service=service, instance=instance_id(service))
    try:
        asyncio.run(_serve(service, needs, setup, settings))
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except TesseraError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
