"""Runs the gateway: Hypercorn serving the HTTP API beside the gRPC control port.

Plain HTTP/1.1 and HTTP/2 (h2c) on gateway_port; with a certificate, HTTPS
(HTTP/1.1, HTTP/2) on gateway_tls_port and HTTP/3 over QUIC on the same UDP
port. Without API keys the HTTP API only listens on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from hypercorn.asyncio import serve
from hypercorn.config import Config

from services.gateway.app import build_app
from services.gateway.auth import KeyRing, RateLimiter
from services.gateway.calendar import ReviewTimer
from services.gateway.principals import PrincipalStore
from services.gateway.review import serve_requests
from services.gateway.schemas import NoteEdit, NoteIn
from services.gateway.uploads import Uploads
from services.gateway.upstream import Mesh, transport_of
from shared.client import Client
from shared.contracts import REVIEW_SUBJECT
from shared.errors import ConfigError, InvalidArgument, StatusError, status_error
from shared.gen.tessera.v1 import gateway_pb2, gateway_pb2_grpc
from shared.runtime import bus, secrets
from shared.runtime.config import Settings, env_name
from shared.runtime.service import Runtime, main
from shared.runtime.status import mesh_status

SERVICE = "gateway"
NEEDS = ("postgres", "nats", "redis")  # postgres: people, their keys and the audit log (migration 0012)
log = logging.getLogger("tessera.gateway")
#: How often unfinished uploads past their expiry are looked for.
UPLOAD_SWEEP_S = 600.0


def _check_port_free(host: str, port: int, name: str, kind: int = socket.SOCK_STREAM) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(env_name(name), f"cannot listen on {host}:{port} ({exc.strerror}); is the port in use?") from None


def http_host(settings: Settings) -> str:
    """Where the HTTP API listens: settings.host, or loopback when no API key is configured."""
    if settings.gateway.api_keys:
        return settings.core.host
    try:
        if ipaddress.ip_address(settings.core.host).is_loopback:
            return settings.core.host
    except ValueError:
        pass
    log.warning("no API key configured (TESSERA_GATEWAY_API_KEYS): the HTTP API listens on 127.0.0.1 only, not %s", settings.core.host)
    return "127.0.0.1"


def hypercorn_config(settings: Settings) -> Config:
    host = http_host(settings)
    config = Config()
    config.accesslog = None
    config.graceful_timeout = settings.rpc.grace_s
    config.keep_alive_timeout = 75
    if settings.gateway.certfile:
        if not settings.gateway.keyfile:
            raise ConfigError(env_name("gateway_keyfile"), "must be set when TESSERA_GATEWAY_CERTFILE is")
        config.certfile, config.keyfile = settings.gateway.certfile, settings.gateway.keyfile
        config.bind = [f"{host}:{settings.gateway.tls_port}"]
        config.quic_bind = [f"{host}:{settings.gateway.tls_port}"]
        config.insecure_bind = [f"{host}:{settings.gateway.port}"]
        _check_port_free(host, settings.gateway.tls_port, "gateway_tls_port")
        _check_port_free(host, settings.gateway.tls_port, "gateway_tls_port", socket.SOCK_DGRAM)
    else:
        config.bind = [f"{host}:{settings.gateway.port}"]
    _check_port_free(host, settings.gateway.port, "gateway_port")
    return config

T = TypeVar("T")


def _checked(model: Callable[..., T], **fields: Any) -> T:
    """A request body built from an RPC's fields, its first refusal as INVALID_ARGUMENT (the REST API's 400)."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise InvalidArgument(f"gateway: {where + ': ' if where else ''}{first['msg']}") from None


class Capture(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh

    async def CaptureNote(self, request: gateway_pb2.CaptureNoteRequest, context: grpc.aio.ServicerContext) -> gateway_pb2.CaptureNoteResponse:
        note = _checked(NoteIn, title=request.title, body=request.body, project=request.project, type=request.type or "note",
                        tags=list(request.tags), force=request.force)
        try:
            path, reply = await self.mesh.capture(note)
        except StatusError as exc:
            raise status_error(exc.code, f"gateway: {exc.message}") from None
        if reply.duplicate:
            return gateway_pb2.CaptureNoteResponse(document_id=reply.existing.document_id, path=str(path), job_id=reply.job_id, duplicate=True,
                                                   similarity=reply.similarity)
        return gateway_pb2.CaptureNoteResponse(document_id=reply.file.document_id, path=str(path), job_id=reply.job_id)

    async def EditNote(self, request: gateway_pb2.EditNoteRequest, context: grpc.aio.ServicerContext) -> gateway_pb2.EditNoteResponse:
        edit = _checked(NoteEdit, title=request.title if request.HasField("title") else None,
                        body=request.body if request.HasField("body") else None, tags=list(request.tags) if request.set_tags else None,
                        type=request.type if request.HasField("type") else None, content_hash=request.content_hash)
        try:
            path, reply = await self.mesh.edit_note(request.document_id, edit)
        except StatusError as exc:
            raise status_error(exc.code, exc.message if exc.message.startswith("gateway:") else f"gateway: {exc.message}") from None
        return gateway_pb2.EditNoteResponse(document_id=reply.file.document_id, path=str(path), job_id=reply.job_id,
                                            content_hash=reply.file.content_hash)


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    mesh = Mesh(settings, Client(settings, transport=transport_of(settings), nc=rt.nc))
    rt.host.on_close(mesh.close)
    capture = Capture(mesh)
    rt.host.add_service(gateway_pb2, gateway_pb2_grpc, "GatewayService", CaptureNote=capture.CaptureNote, EditNote=capture.EditNote)
    reviews = await serve_requests(rt.nats, mesh)

    async def stop_reviews() -> None:
        with contextlib.suppress(Exception):
            await reviews.unsubscribe()

    rt.host.on_stop_accepting(stop_reviews)

    async def ask_for_review(payload: bytes) -> bytes:
        reply = await rt.nats.request(REVIEW_SUBJECT, payload, timeout=300, headers=bus.message_headers())
        return bytes(reply.data)

    timer = ReviewTimer(settings.knowledge.review_schedule, ask_for_review)
    rt.host.spawn(timer.run(rt.host.stopping), name="review timer")
    store = Uploads(settings)

    async def expire_uploads() -> None:
        if gone := await asyncio.to_thread(store.expire_old):
            log.info("gateway: %d unfinished upload(s) expired and deleted", gone)

    rt.host.every(UPLOAD_SWEEP_S, expire_uploads, name="upload expiry", first_s=5.0)
    config = hypercorn_config(settings)
    people = PrincipalStore(rt.db)
    rt.host.spawn(people.write_audit(rt.host.stopping), name="audit writer", stop_within=2.0)
    keys = KeyRing([secrets.ensure(settings, secrets.ADMIN_KEY), *settings.gateway.api_keys], people)  # always one: the admin key
    app = build_app(settings, mesh, keys, RateLimiter(rt.cache, settings.gateway.rate_limit),
                    lambda: rt.host.ready, lambda: mesh_status(settings))
    stopping = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stopping.wait))  # type: ignore[arg-type]

    async def stop_http(left: float) -> None:
        """Hypercorn stops accepting and lets requests (and event streams) finish within its graceful timeout."""
        config.graceful_timeout = left
        stopping.set()
        await asyncio.wait_for(task, timeout=left + 0.5)

    rt.host.on_drain(stop_http)


def run() -> None:
    main(SERVICE, NEEDS, setup)
