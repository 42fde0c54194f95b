"""The data-plane client: one connection per peer for all streams, reopened when it is lost or idle.

``await client.open(ticket, chat_pb2.ChatEvent)`` connects (or reuses the
connection to ``ticket.quic_addr``), verifies the server against the configured
CA, opens a stream, presents the token and returns a :class:`FrameStream` of
decoded frames; a refused ticket raises :class:`StreamRefused` with the
server's code and sentence. Streams under a connection that dies raise
:class:`ConnectionLost`; the next ``open`` connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Generic, TypeVar

from aioquic.asyncio.client import connect
from google.protobuf.message import DecodeError, Message

from shared.gen.tessera.v1 import common_pb2
from shared.quic.errors import ConnectionLost, FrameError, QuicError, StreamRefused
from shared.quic.frames import encode
from shared.quic.protocol import FlowProtocol
from shared.quic.tls import ALPN, certificates, client_configuration
from shared.runtime.config import Settings

M = TypeVar("M", bound=Message)
CONNECT_TIMEOUT_S = 10.0


def split_addr(addr: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; ValueError with a sentence otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"quic: {addr!r} is not a host:port address")
    return host.strip("[]"), int(port)


class FrameStream(Generic[M]):
    """Frames of one stream, decoded; ``cancel()`` (or leaving an ``async with``) stops the producer at the server."""

    def __init__(self, proto: FlowProtocol, stream_id: int, message: type[M]) -> None:
        self.proto, self.stream_id, self.message = proto, stream_id, message
        self.done = False

    def __aiter__(self) -> AsyncIterator[M]:
        return self

    async def __anext__(self) -> M:
        if self.done:
            raise StopAsyncIteration
        try:
            body = await self.proto.read_frame(self.stream_id)
        except BaseException:
            self._finish()
            raise
        if body is None:
            self._finish()
            raise StopAsyncIteration
        try:
            return self.message.FromString(body)
        except DecodeError:
            self.cancel()
            raise FrameError(f"quic: a frame on stream {self.stream_id} is not a {self.message.DESCRIPTOR.full_name}") from None

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            self.proto.forget(self.stream_id)

    def cancel(self) -> None:
        if not self.done:
            self.proto.cancel(self.stream_id)
            self._finish()

    async def __aenter__(self) -> FrameStream[M]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


class QuicClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conns: dict[tuple[str, int], tuple[FlowProtocol, contextlib.AsyncExitStack]] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.connects = 0  # connections made, for tests and status: reuse keeps it at one per peer
        self._cafile: Path | None = None  # looked up on the first connection, not on every one

    async def connection(self, host: str, port: int) -> FlowProtocol:
        key = (host, port)
        found = self._conns.get(key)
        if found is not None and found[0].lost is None:
            return found[0]
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = self._conns.get(key)
            if found is not None:
                if found[0].lost is None:
                    return found[0]
                del self._conns[key]
                with contextlib.suppress(Exception):
                    await found[1].aclose()
            if self._cafile is None:
                self._cafile = certificates(self.settings).cafile
            stack = contextlib.AsyncExitStack()
            create = functools.partial(FlowProtocol, window=self.settings.quic.stream_window,
                                       connection_window=self.settings.quic.connection_window)
            try:
                proto = await asyncio.wait_for(stack.enter_async_context(
                    connect(host, port, configuration=client_configuration(self.settings, host, self._cafile), create_protocol=create)), CONNECT_TIMEOUT_S)
            except (ConnectionError, OSError, TimeoutError) as exc:
                await stack.aclose()
                reason = str(exc) or type(exc).__name__
                raise ConnectionLost(f"quic: could not connect to {host}:{port} ({reason}); is the service up, and does it "
                                     "present a certificate the configured CA signed?") from None
            assert isinstance(proto, FlowProtocol)
            self._conns[key] = (proto, stack)
            self.connects += 1
            watchdog = asyncio.create_task(self._keepalive(proto, f"{host}:{port}"))
            stack.push_async_callback(_stop, watchdog)
            return proto

    async def _keepalive(self, proto: FlowProtocol, addr: str) -> None:
        """While streams are open, PING the server; one left unanswered for quic_peer_timeout_s means the server is gone.

        A server process that dies sends nothing over UDP: without this, its readers would wait for the idle timeout.
        """
        every, limit = self.settings.quic.keepalive_s, self.settings.quic.peer_timeout_s
        while proto.lost is None:
            await asyncio.sleep(every)
            if not proto.streams or proto.lost is not None:
                continue
            try:
                await asyncio.wait_for(proto.ping(), limit)
            except TimeoutError:
                if proto.lost is None and proto.streams:
                    proto.abandon(f"the server at {addr} stopped answering (no reply to a keep-alive in {limit:g} s)")
                return
            except Exception:  # noqa: BLE001 — boundary: the keep-alive task; a connection closed under the ping: its streams already know
                return

    async def open(self, ticket: common_pb2.StreamTicket, message: type[M]) -> FrameStream[M]:
        if ticket.alpn and ticket.alpn != ALPN:
            raise StreamRefused("FAILED_PRECONDITION", f"quic: the ticket is for protocol {ticket.alpn!r}; this client speaks {ALPN!r}")
        host, port = split_addr(ticket.quic_addr)
        proto = await self.connection(host, port)
        stream_id = proto._quic.get_next_available_stream_id()
        await proto.write(stream_id, encode(common_pb2.StreamOpen(token=ticket.token)), end=True)
        try:
            body = await proto.read_frame(stream_id)
            if body is None:
                raise FrameError("quic: the server ended the stream without a reply")
            reply = common_pb2.StreamReply.FromString(body)
        except BaseException:
            proto.cancel(stream_id)
            proto.forget(stream_id)
            raise
        if reply.code != "OK":
            proto.forget(stream_id)
            raise StreamRefused(reply.code, reply.message)
        if reply.frame_type != message.DESCRIPTOR.full_name:
            proto.cancel(stream_id)
            proto.forget(stream_id)
            raise FrameError(f"quic: the ticket streams {reply.frame_type}, not {message.DESCRIPTOR.full_name}")
        return FrameStream(proto, stream_id, message)

    def lose(self, addr: str) -> None:
        """Close the connection to ``addr`` at once (tests: a lost connection; streams on it fail, the next open reconnects)."""
        found = self._conns.get(split_addr(addr))
        if found is not None:
            found[0].abandon("closed by this client")

    async def close(self) -> None:
        conns, self._conns = self._conns, {}
        for _proto, stack in conns.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stack.aclose(), 5)


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


__all__ = ["FrameStream", "QuicClient", "QuicError", "split_addr"]
