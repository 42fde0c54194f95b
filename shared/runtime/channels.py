"""gRPC client factory: one channel per service, deadlines, retries, discovery.

* Every call gets a deadline: the caller's timeout, else ``deadline_ms``, and
  never later than the deadline of the call being served (it travels a hop on).
* The request id travels as ``x-request-id`` metadata.
* Idempotent methods (:data:`IDEMPOTENT`) retry on UNAVAILABLE through the
  channel's service config; other methods are never retried.
* Addresses are static (settings) or discovered with NATS micro; many instances
  become one channel with round-robin balancing.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from nats.aio.client import Client as NATS

from shared.errors import DiscoveryError
from shared.runtime import bus, principal, secrets, tracing
from shared.runtime.config import Settings
from shared.runtime.logs import REQUEST_ID_HEADER, current_request_id
from shared.runtime.rpc import deadline

#: Methods safe to retry: they read, or write the same result when repeated.
IDEMPOTENT: dict[str, tuple[str, ...]] = {
    "tessera.v1.NodeService": ("GetInfo",),
    "grpc.health.v1.Health": ("Check",),
    "tessera.v1.EmbedService": ("Embed", "GetModel"),
    "tessera.v1.SearchService": ("Search", "Related"),
    "tessera.v1.IngestService": ("GetJob", "GetDocument", "ReadDocument", "ListDocuments", "GetLibrary"),
    "tessera.v1.ChatService": ("GetConversation", "ListConversations", "RenameConversation", "GetModel"),
    "tessera.v1.SchedulerService": ("Status", "Renew", "Release"),
}

Stub = TypeVar("Stub")


def service_config(retries: int) -> str:
    names = [{"service": svc, "method": m} for svc, methods in IDEMPOTENT.items() for m in methods]
    return json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{
            "name": names,
            "retryPolicy": {"maxAttempts": max(2, retries), "initialBackoff": "0.05s", "maxBackoff": "1s",
                            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
        }],
    })


def effective_timeout(requested: float | None, default_s: float) -> float:
    """The caller's timeout (or the default), capped by the incoming call's deadline."""
    timeout = requested if requested is not None else default_s
    incoming = deadline.get()
    if incoming is not None:
        timeout = min(timeout, max(0.0, incoming - time.monotonic()))
    return timeout


def key_metadata(settings: Settings) -> tuple[str, str]:
    """The caller's key as call metadata (every gRPC server checks it: shared.runtime.rpc.CallerKeys)."""
    return ("authorization", f"Bearer {secrets.rpc_key(settings)}")


def call_metadata() -> tuple[tuple[str, str], ...]:
    """The request id and trace context as call metadata. Calls that stream their requests must pass it themselves:
    grpc.aio drops the metadata a client interceptor adds to stream-unary and stream-stream calls (the key travels
    with KeyedChannel, which adds it to every call)."""
    return ((REQUEST_ID_HEADER, current_request_id()), *tracing.inject({}).items())


class _KeyedCall:
    """A multicallable whose every call carries the key (unless the caller put one in its metadata)."""

    def __init__(self, call: Any, key: tuple[str, str]) -> None:
        self._call, self._key = call, key

    def __call__(self, *args: Any, metadata: Any = None, **kwargs: Any) -> Any:
        given = tuple(metadata or ())
        if not any(k == self._key[0] for k, _ in given):
            given = (*given, self._key)
        # the person this call acts for (row-level security), here for the key's reason: an interceptor's is dropped
        who = principal.to_metadata(principal.current.get())
        if who is not None and not any(k == principal.HEADER for k, _ in given):
            given = (*given, who)
        return self._call(*args, metadata=given, **kwargs)


class KeyedChannel:
    """A channel whose calls all carry the caller's key and principal. grpc.aio drops the metadata a client interceptor
    adds to any call with a streamed side (seen for unary-stream too), so both are added where each call is made."""

    def __init__(self, channel: grpc.aio.Channel, key: tuple[str, str]) -> None:
        self.channel, self._key = channel, key

    def unary_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _KeyedCall(self.channel.unary_unary(*args, **kwargs), self._key)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _KeyedCall(self.channel.unary_stream(*args, **kwargs), self._key)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return _KeyedCall(self.channel.stream_unary(*args, **kwargs), self._key)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return _KeyedCall(self.channel.stream_stream(*args, **kwargs), self._key)

    def __getattr__(self, name: str) -> Any:  # close, get_state, wait_for_state_change, channel_ready, ...
        return getattr(self.channel, name)

    async def __aenter__(self) -> KeyedChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()


class _Interceptor(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor,
                   grpc.aio.StreamUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, default_s: float) -> None:
        self.default_s = default_s

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(d.metadata or ()))
        if REQUEST_ID_HEADER not in metadata:
            metadata.add(REQUEST_ID_HEADER, current_request_id())
        for key, value in tracing.inject({}).items():  # W3C traceparent: the callee's span continues this trace
            if key not in metadata:
                metadata.add(key, value)
        return grpc.aio.ClientCallDetails(d.method, effective_timeout(d.timeout, self.default_s), metadata,
                                          d.credentials, d.wait_for_ready)

    async def intercept_unary_unary(self, continuation: Callable[..., Any], d: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(self._details(d), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], d: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(self._details(d), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], d: grpc.aio.ClientCallDetails, it: Any) -> Any:
        return await continuation(self._details(d), it)

    async def intercept_stream_stream(self, continuation: Callable[..., Any], d: grpc.aio.ClientCallDetails, it: Any) -> Any:
        return await continuation(self._details(d), it)


def _ip_target(addresses: list[str]) -> str:
    """gRPC target for several host:port addresses (hostnames resolved to IPv4)."""
    ips = []
    for addr in addresses:
        host, _, port = addr.rpartition(":")
        ips.append(f"{socket.gethostbyname(host.strip('[]'))}:{port}")
    return "ipv4:" + ",".join(sorted(set(ips)))


def open_channel(target: str, settings: Settings) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[("grpc.service_config", service_config(settings.rpc.retries)), ("grpc.enable_retries", 1),
                 ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 # A restarted instance (pm2 after a crash) is found again within a second or two, not after
                 # gRPC's default backoff, which grows to two minutes while the service is down.
                 ("grpc.initial_reconnect_backoff_ms", 250), ("grpc.min_reconnect_backoff_ms", 250),
                 ("grpc.max_reconnect_backoff_ms", 2000)],
        interceptors=[_Interceptor(settings.rpc.deadline_ms / 1000)],
    )


#: How long a call waits for a channel in reconnect backoff: the longest backoff (2 s) and its 20% jitter.
SETTLE_S = 2.5


async def settle(channel: grpc.aio.Channel, within_s: float = SETTLE_S) -> None:
    """Give a channel in reconnect backoff the chance to reach a restarted instance before the call.

    A call on a channel in TRANSIENT_FAILURE fails at once with UNAVAILABLE, even when the instance came back a
    moment ago (pm2 restarted it) and the next reconnect attempt is due within the backoff. Waiting for that attempt
    lets the first question after a restart succeed; where the instance is really down, the call fails after it."""
    state = channel.get_state(try_to_connect=True)
    if state != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
        return
    end = time.monotonic() + within_s
    while state != grpc.ChannelConnectivity.READY:
        left = end - time.monotonic()
        if left <= 0:
            return
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), left)
        except TimeoutError:
            return
        state = channel.get_state(try_to_connect=True)


class Channels:
    """Channels to the mesh's services, one per service, made on first use."""

    def __init__(self, settings: Settings, nc: NATS | None = None) -> None:
        self.settings, self.nc = settings, nc
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._key: tuple[str, str] | None = None  # read from its file on first use, then kept

    async def target(self, service: str) -> str:
        if self.settings.rpc.discovery == "static":
            return self.settings.address(service)
        if self.nc is None:
            raise DiscoveryError(f"client: TESSERA_DISCOVERY=nats but no NATS connection was given for {service}")
        instances = await bus.discover(self.nc, service)
        if not instances:
            raise DiscoveryError(f"client: no instance of {service} is registered with NATS")
        return _ip_target([i["grpc_addr"] for i in instances])

    async def channel(self, service: str) -> grpc.aio.Channel:
        if service not in self._channels:
            self._channels[service] = open_channel(await self.target(service), self.settings)
        return self._channels[service]

    async def stub(self, service: str, stub_cls: Callable[[Any], Stub]) -> Stub:
        channel = await self.channel(service)
        await settle(channel)
        if self._key is None:
            self._key = key_metadata(self.settings)
        return stub_cls(KeyedChannel(channel, self._key))  # every call carries the key

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close()
        self._channels.clear()
