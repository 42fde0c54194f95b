"""The data-plane server: hands out stream tickets, and streams each ticket's frames to whoever redeems it.

A client opens a bidirectional stream, writes one StreamOpen frame (the token)
and ends its side. The server answers one StreamReply frame: "OK" and the type
of the frames that follow, or a refusal (wrong, reused or expired token), after
which the stream ends. Then the ticket's producer runs, each frame waiting for
room in the stream's window, and the stream ends after the producer's last frame
(an end frame with totals, by convention of the producer). A reader that stops
reading stops its producer only; one that cancels closes the producer, whose
``finally`` blocks run (chat stops generating).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aioquic.asyncio import serve
from aioquic.asyncio.server import QuicServer as AioQuicServer
from aioquic.quic.connection import QuicConnection
from google.protobuf.timestamp_pb2 import Timestamp

from shared.gen.tessera.v1 import common_pb2
from shared.quic._aioquic_compat import server_protocols, server_transport, unacknowledged_streams
from shared.quic.errors import ConnectionLost, FrameError, QuicError, StreamClosed, StreamRefused
from shared.quic.frames import encode, encode_parts
from shared.quic.protocol import FAILED, REFUSED, FlowProtocol, batch_reads, grow_socket_buffers
from shared.quic.tickets import TicketBook
from shared.quic.tls import ALPN, server_configuration
from shared.runtime.config import Settings
from shared.runtime.tasks import finish_by

log = logging.getLogger("tessera.quic")
OPEN_TIMEOUT_S = 10.0
MAX_OPEN_FRAME = 1024
SWEEP_S = 5.0
ACK_POLL_S = 0.02


class StreamStats:
    """Counters the tests and `tessera status` look at."""

    def __init__(self) -> None:
        self.opened = self.refused = self.completed = self.cancelled = 0


class ServerProtocol(FlowProtocol):
    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *, server: QuicServer) -> None:
        super().__init__(quic, stream_handler, window=server.settings.quic.stream_window,
                         connection_window=server.settings.quic.connection_window)
        self.server = server
        self.tasks: set[asyncio.Task[None]] = set()

    def stream_opened(self, stream_id: int) -> None:
        if stream_id % 4 != 0:  # only client-initiated bidirectional streams carry tickets
            self.cancel(stream_id, REFUSED)
            return
        task = asyncio.get_running_loop().create_task(self.server.handle(self, stream_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def quic_event_received(self, event: Any) -> None:
        super().quic_event_received(event)
        if self.lost is not None:
            for task in list(self.tasks):
                task.cancel()


class QuicServer:
    def __init__(self, settings: Settings, *, host: str | None = None, port: int = 0, advertise: str | None = None) -> None:
        self.settings = settings
        self.host = host or settings.core.host
        self.port = port
        self.advertise = advertise or settings.public_host()
        self.tickets = TicketBook(settings.quic.ticket_ttl_s)
        self.stats = StreamStats()
        self._server: AioQuicServer | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> QuicServer:
        config = server_configuration(self.settings, self.host)
        self._server = await serve(self.host, self.port, configuration=config,
                                   create_protocol=functools.partial(ServerProtocol, server=self))
        transport = server_transport(self._server)
        assert transport is not None, "serve() returns a bound endpoint"
        self.port = transport.get_extra_info("sockname")[1]
        grow_socket_buffers(transport)
        batch_reads(transport, self._server.datagram_received)
        self._sweeper = asyncio.create_task(self._sweep())
        log.info("quic: serving the data plane", extra={"addr": self.address, "alpn": ALPN})
        return self

    @property
    def address(self) -> str:
        host = f"[{self.advertise}]" if ":" in self.advertise else self.advertise
        return f"{host}:{self.port}"

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.tickets.sweep()

    def issue(self, frame_type: str, producer: Callable[[], AsyncIterator[Any]], *, on_expire: Callable[[], None] | None = None) -> common_pb2.StreamTicket:
        """A ticket for ``producer``'s frames; StreamRefused RESOURCE_EXHAUSTED when too many are outstanding."""
        token, ttl = self.tickets.issue(frame_type, producer, on_expire=on_expire)
        expires = Timestamp()
        expires.FromNanoseconds(int((time.time() + ttl) * 1e9))
        return common_pb2.StreamTicket(quic_addr=self.address, token=token, expires_at=expires, alpn=ALPN)

    async def _reply(self, proto: ServerProtocol, stream_id: int, code: str, message: str, frame_type: str = "", end: bool = False) -> None:
        await proto.write(stream_id, encode(common_pb2.StreamReply(code=code, message=message, frame_type=frame_type)), end=end)

    async def handle(self, proto: ServerProtocol, stream_id: int) -> None:
        self.stats.opened += 1
        try:
            try:
                try:  # the opening frame's header is checked before its body is buffered
                    body = await asyncio.wait_for(proto.read_frame(stream_id, max_frame=MAX_OPEN_FRAME), OPEN_TIMEOUT_S)
                except FrameError:
                    body = None
                if body is None or len(body) > MAX_OPEN_FRAME:
                    raise StreamRefused("INVALID_ARGUMENT", "quic: a stream must start with one StreamOpen frame holding the ticket's token")
                opening = common_pb2.StreamOpen.FromString(body)
                ticket = self.tickets.redeem(opening.token)
            except StreamRefused as exc:
                self.stats.refused += 1
                log.info("quic: stream refused", extra={"code": exc.code, "reason": exc.message})
                await self._reply(proto, stream_id, exc.code, exc.message, end=True)
                return
            except TimeoutError:
                self.stats.refused += 1
                await self._reply(proto, stream_id, "DEADLINE_EXCEEDED", f"quic: no StreamOpen frame within {OPEN_TIMEOUT_S:.0f} s", end=True)
                return
            except ValueError:  # a body that is not a StreamOpen message
                self.stats.refused += 1
                await self._reply(proto, stream_id, "INVALID_ARGUMENT", "quic: the first frame is not a StreamOpen message", end=True)
                return
            await self._reply(proto, stream_id, "OK", "", ticket.frame_type)
            await self._produce(proto, stream_id, ticket.producer())
        except (StreamClosed, ConnectionLost):
            self.stats.cancelled += 1
        except QuicError as exc:
            log.warning("quic: stream %d failed: %s", stream_id, exc)
            proto.cancel(stream_id, FAILED)
        except Exception:  # boundary: one stream's producer; the stream fails, the connection goes on
            log.exception("quic: the producer of stream %d failed", stream_id)
            proto.cancel(stream_id, FAILED)
        finally:
            proto.forget(stream_id)

    async def _produce(self, proto: ServerProtocol, stream_id: int, frames: AsyncIterator[Any]) -> None:
        try:
            async for message in frames:
                await proto.write(stream_id, encode_parts(message))
            await proto.write(stream_id, b"", end=True)
            self.stats.completed += 1
        finally:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()  # the producer's finally blocks run now, not at garbage collection

    def _protocols(self) -> list[ServerProtocol]:
        """The connections this server holds."""
        if self._server is None:
            return []
        return [proto for proto in server_protocols(self._server) if isinstance(proto, ServerProtocol)]

    def _streams_in_flight(self) -> list[asyncio.Task[None]]:
        return [task for proto in self._protocols() for task in proto.tasks]

    async def drain(self, timeout: float) -> None:
        """Let the streams in flight finish (tickets already handed out may still be redeemed) for up to ``timeout``
        seconds, then cancel what is left; part of the one shutdown deadline (ServiceHost.on_drain)."""
        deadline = time.monotonic() + max(0.0, timeout)
        tasks = self._streams_in_flight()
        if tasks:
            log.info("quic: draining streams", extra={"streams": len(tasks), "timeout_s": round(timeout, 1)})
            await finish_by(tasks, timeout)
        await self._flush(deadline)

    async def _flush(self, deadline: float) -> None:
        """Wait, until ``deadline``, for the peers to acknowledge what the finished streams wrote.

        A producer is done once its last frame is queued; the frames may still sit in
        the send buffer (pacing, a slow peer's acknowledgements), and closing the
        connection then would drop them: the reader would see the connection close
        with its answer cut short.
        """
        while time.monotonic() < deadline:
            waiting = [proto for proto in self._protocols() if proto.lost is None and unacknowledged_streams(proto._quic)]
            if not waiting:
                return
            for proto in waiting:
                proto.transmit()
            await asyncio.sleep(ACK_POLL_S)
        left = sum(unacknowledged_streams(proto._quic) for proto in self._protocols() if proto.lost is None)
        if left:
            log.warning("quic: closing with streams the peers have not acknowledged", extra={"streams": left})

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self.tickets.close()
        for task in self._streams_in_flight():
            task.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
