"""Runs the gateway: Hypercorn serving the ASGI app beside the gRPC control port."""

from __future__ import annotations

import asyncio
import socket

from hypercorn.asyncio import serve
from hypercorn.config import Config

from services.gateway.app import build_app
from shared.config import env_name
from shared.errors import ConfigError
from shared.gen.tessera.v1 import gateway_pb2, gateway_pb2_grpc
from shared.service import Runtime, main
from shared.status import mesh_status

SERVICE = "gateway"
NEEDS = ("nats", "redis")
OWNER = "chat and gateway (streamed RAG answers with citations)"


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(env_name("gateway_port"), f"cannot listen on {host}:{port} ({exc.strerror}); is the port in use?") from None


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    rt.host.add_service(gateway_pb2, gateway_pb2_grpc, "GatewayService", OWNER)
    _check_port_free(settings.host, settings.gateway_port)
    config = Config()
    config.bind = [f"{settings.host}:{settings.gateway_port}"]
    config.accesslog = None
    config.graceful_timeout = settings.grace_s
    stopping = asyncio.Event()
    app = build_app(lambda: mesh_status(settings), lambda: rt.host.ready)
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stopping.wait))  # type: ignore[arg-type]

    async def stop_http() -> None:
        stopping.set()
        await asyncio.wait_for(task, timeout=settings.grace_s + 1)

    rt.host.on_close(stop_http)


def run() -> None:
    main(SERVICE, NEEDS, setup)
