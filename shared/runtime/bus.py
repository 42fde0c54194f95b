"""NATS and JetStream: connection, idempotent streams/consumers, events with
request ids, and service registration/discovery with NATS micro.

Every instance registers a micro service named ``tessera-<service>`` whose
metadata carries its gRPC address; :func:`discover` asks ``$SRV.INFO`` and
gathers the replies of all live instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service

from shared.errors import DependencyError
from shared.runtime import secrets, tracing
from shared.runtime.config import Settings
from shared.runtime.logs import REQUEST_ID_HEADER, current_request_id, new_request_id, request_id

log = logging.getLogger("tessera.bus")


async def connect(settings: Settings, name: str, *, timeout: float = 5.0) -> NATS:
    """Connect to NATS, reconnecting forever once connected; fail fast at start."""
    # With unlimited reconnects nats-py also retries the first connect forever: bound it.
    try:
        return await asyncio.wait_for(nats.connect(
            secrets.nats_url(settings), name=name, connect_timeout=min(timeout, 2.0), allow_reconnect=True,
            max_reconnect_attempts=-1, reconnect_time_wait=0.5,
            error_cb=_log_error, disconnected_cb=_log_disconnect,
        ), timeout)
    except TimeoutError:
        raise DependencyError(f"nats: cannot reach TESSERA_NATS_URL={settings.infra.nats_url} (no answer in {timeout:.0f}s)") from None
    except Exception as exc:  # noqa: BLE001 — boundary: the first connect; any failure is the one-line DependencyError naming the setting
        raise DependencyError(f"nats: cannot reach TESSERA_NATS_URL={settings.infra.nats_url} ({type(exc).__name__}: {exc})") from None


async def probe(url: str, *, timeout: float = 2.0) -> NATS:
    """A short-lived connection for status checks: one try, bounded in time, no reconnects (``url`` with its
    credentials: secrets.nats_url)."""
    async def quiet(exc: Exception) -> None:
        return None

    try:
        return await asyncio.wait_for(nats.connect(url, connect_timeout=timeout, allow_reconnect=False, max_reconnect_attempts=1,
                                                   error_cb=quiet), timeout + 0.5)
    except TimeoutError:
        raise DependencyError(f"nats: no answer from {secrets.redact(url)} in {timeout:.0f}s") from None


async def _log_error(exc: Exception) -> None:
    log.warning("nats error", extra={"error": str(exc)})


async def _log_disconnect() -> None:
    log.warning("nats disconnected")


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to this config; safe to call from every instance."""
    try:
        await js.add_stream(config)
    except BadRequestError as exc:
        if exc.err_code != 10058:  # stream name already in use with a different configuration
            raise
        await js.update_stream(config)


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create a durable consumer if it does not exist yet (existing ones are kept as they are)."""
    assert config.durable_name, "ensure_consumer needs a durable consumer"
    try:
        await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, config)


async def publish_event(nc: NATS, subject: str, payload: Mapping[str, Any]) -> None:
    """Publish a JSON event carrying the current request id."""
    await nc.publish(subject, json.dumps(payload).encode(), headers=message_headers())


class WorkQueue:
    """A JetStream pull consumer shared by every instance of a service: a durable work queue.

    ``run`` fetches up to ``batch`` messages at a time and hands them to ``handle``, which
    acknowledges each (ack, nak with a delay, or term). A handler that raises has its batch
    nak'ed for redelivery after ``retry_s``; a NATS hiccup is logged and the fetch retried.
    """

    def __init__(self, nc: NATS, stream: StreamConfig, subject: str, durable: str, *, ack_wait_s: float,
                 max_ack_pending: int, batch: int = 16, retry_s: float = 5.0) -> None:
        self.nc, self.stream, self.subject, self.durable = nc, stream, subject, durable
        self.config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait_s, max_ack_pending=max_ack_pending)
        self.batch, self.retry_s = batch, retry_s

    async def pending(self) -> int:
        """Messages waiting or delivered and not yet acknowledged."""
        info = await self.nc.jetstream().consumer_info(str(self.stream.name), self.durable)
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def run(self, handle: Callable[[list[Msg]], Awaitable[None]], stopping: asyncio.Event) -> None:
        js = self.nc.jetstream()
        await ensure_stream(js, self.stream)
        sub = await js.pull_subscribe(self.subject, durable=self.durable, stream=self.stream.name, config=self.config)
        try:
            while not stopping.is_set():
                try:
                    msgs = await sub.fetch(batch=self.batch, timeout=1.0)
                except TimeoutError:
                    continue
                except nats.errors.Error as exc:  # NATS restarting: fetch again
                    log.warning("%s: fetch failed", self.durable, extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                    continue
                try:
                    await handle(msgs)
                except Exception:  # boundary: one batch; logged and redelivered, the loop goes on
                    log.exception("%s: a batch failed; it will be redelivered", self.durable)
                    for m in msgs:
                        with contextlib.suppress(nats.errors.Error):
                            await m.nak(delay=self.retry_s)
        finally:
            with contextlib.suppress(nats.errors.Error):  # an open pull subscription would stall the NATS drain
                await sub.unsubscribe()


def delivered(msg: Msg) -> int:
    """How many times JetStream has delivered this message (1: the first time, or a message without metadata)."""
    try:
        return int(msg.metadata.num_delivered)
    except (AttributeError, ValueError, TypeError, nats.errors.Error):
        return 1


def message_headers() -> dict[str, str]:
    """Headers of a NATS message: the request id and the W3C trace context, so a subscriber continues both."""
    return dict(tracing.inject({REQUEST_ID_HEADER: current_request_id()}))


def trace_parent(msg: Msg) -> Any:
    """The trace context a message's publisher sent (empty: a new trace)."""
    return tracing.extract(msg.headers or {})


def adopt_request_id(msg: Msg) -> str:
    """In a subscriber: continue the request id the publisher sent (or start one)."""
    rid = (msg.headers or {}).get(REQUEST_ID_HEADER) or new_request_id()
    request_id.set(rid)
    return rid


def service_name(service: str) -> str:
    return f"tessera-{service}"


async def register(nc: NATS, service: str, instance_id: str, grpc_addr: str, version: str) -> Service:
    """Announce this instance with NATS micro; stop() the returned service to withdraw it."""
    meta = {"grpc_addr": grpc_addr, "instance_id": instance_id}

    async def info(req: Request) -> None:
        await req.respond(json.dumps({"service": service, **meta}).encode())

    svc = await add_service(nc, name=service_name(service), version=version, metadata=meta,
                            description=f"Tessera {service} service")
    await svc.add_endpoint(EndpointConfig(name="info", handler=info, subject=f"tessera.{service}.info"))
    return svc


async def discover(nc: NATS, service: str, *, wait: float = 0.3) -> list[dict[str, str]]:
    """Every live instance of a service: ``[{"grpc_addr", "instance_id", ...}]``."""
    inbox = nc.new_inbox()
    found: dict[str, dict[str, str]] = {}
    sub = await nc.subscribe(inbox)
    try:
        await nc.publish(f"$SRV.INFO.{service_name(service)}", b"", reply=inbox)
        await nc.flush()
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while (left := end - loop.time()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            if not msg.data:  # "no responders": nobody is registered
                break
            try:
                meta = json.loads(msg.data).get("metadata") or {}
            except ValueError:
                continue
            if meta.get("grpc_addr"):
                found[meta.get("instance_id", meta["grpc_addr"])] = meta
    finally:
        await sub.unsubscribe()
    return list(found.values())
