"""One QUIC connection with per-stream buffers, consumer-driven credit and a bounded send side.

:class:`FlowProtocol` is an aioquic ``QuicConnectionProtocol`` for both ends:

* receive: bytes wait in a per-stream :class:`~shared.quic.frames.FrameDecoder`
  until the application takes whole frames; credit (MAX_STREAM_DATA, MAX_DATA)
  is granted as they are taken (see :mod:`shared.quic.flow`), never before —
  except that while the reader waits for the rest of a frame, the part it holds
  counts as taken, so a frame larger than the window still arrives;
* send: :meth:`FlowProtocol.write` waits while the stream holds ``window``
  bytes not yet acknowledged, so a slow reader holds up its own writer only.

aioquic 1.7.2 (pinned) grows receive limits as data *arrives*; the two
``_write_*_limits`` methods of each of these connections are replaced on the
instance with ones that follow consumption. Every use of aioquic's private
attributes goes through :mod:`shared.quic._aioquic_compat`, which checks them at
import. Everything else is aioquic's.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.connection import QuicConnection

from shared.quic._aioquic_compat import (
    CONNECTION_LIMIT_FRAME_CAPACITY,
    MAX_STREAM_DATA_FRAME_CAPACITY,
    QuicFrameType,
    coarse_pacing,
    connection_limits,
    install_credit,
    send_buffered,
    stream_of,
    take_sender,
    wide_stream_frames,
)
from shared.quic.errors import ConnectionLost, FrameError, StreamClosed
from shared.quic.flow import may_send, raised_limit
from shared.quic.frames import FrameDecoder

#: Application error codes on RESET_STREAM / STOP_SENDING.
CANCELLED = 0x10
REFUSED = 0x11
FAILED = 0x12
SOCKET_BUFFER = 8 * 1024 * 1024
#: Pieces of a write smaller than this in all are joined and written at once (large ones go in one by one, uncopied).
JOIN_BELOW = 64 * 1024


def grow_socket_buffers(transport: asyncio.BaseTransport) -> None:
    """Larger UDP buffers, so that a burst of datagrams is not dropped while Python is busy."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    for force, plain in ((getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF), (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF)):
        for option in (force, plain):
            if option is None:
                continue
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
                break
            except OSError:  # FORCE needs CAP_NET_ADMIN; the plain one is capped by net.core.*mem_max
                continue


def batch_reads(transport: asyncio.BaseTransport, deliver: Any, batch: int = 64) -> bool:
    """Read up to ``batch`` datagrams per wake-up instead of one, so that one transmit (acks, credit, the next
    packets) follows a batch: aioquic's per-wake-up work is most of its cost. Needs the selector event loop's
    reader hooks (CPython 3.11's); without them, reads stay one per wake-up. True when installed."""
    loop = getattr(transport, "_loop", None)
    sock = getattr(transport, "_sock", None)
    if loop is None or sock is None or not hasattr(loop, "_add_reader") or not hasattr(loop, "_remove_reader"):
        return False

    def read_ready() -> None:
        for _ in range(batch):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol: Any = transport._protocol  # type: ignore[attr-defined]
                protocol.error_received(exc)
                return
            deliver(data, addr)

    def swap() -> None:
        if not transport.is_closing():
            loop._remove_reader(sock.fileno())
            loop._add_reader(sock.fileno(), read_ready)

    loop.call_soon(swap)  # after the transport's own reader, which it adds with call_soon too
    return True


class StreamState:
    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.fed = 0  # bytes that arrived on the stream
        self.consumed = 0  # bytes the application has taken (credit follows this)
        self.ended = False  # the peer finished its side
        self.error: Exception | None = None  # reset/stopped by the peer, or the connection died
        self.readable = asyncio.Event()
        self.writable = asyncio.Event()


class FlowProtocol(QuicConnectionProtocol):
    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *, window: int, connection_window: int) -> None:
        super().__init__(quic, stream_handler)
        self.window = window
        self.connection_window = connection_window
        self.streams: dict[int, StreamState] = {}
        self.consumed_total = 0
        self.lost: Exception | None = None
        self._waiting_writers: set[int] = set()
        install_credit(quic, self._write_stream_limits, self._write_connection_limits)
        coarse_pacing(quic)
        wide_stream_frames(quic)

    # -- aioquic hooks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if transport.get_protocol() is self:  # a client's own socket (a server's is shared and set up by the server)
            grow_socket_buffers(transport)
            batch_reads(transport, self.datagram_received)

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._quic.receive_datagram(data, addr, now=self._loop.time())  # type: ignore[arg-type]
        self._process_events()
        self._transmit_soon()  # after the batch of datagrams read together, not after each
        # Acknowledgements shrink send buffers: let blocked writers look again.
        for stream_id in list(self._waiting_writers):
            state = self.streams.get(stream_id)
            if state is not None:
                state.writable.set()

    def state(self, stream_id: int) -> StreamState:
        state = self.streams.get(stream_id)
        if state is None:
            state = self.streams[stream_id] = StreamState()
        return state

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            is_new = event.stream_id not in self.streams
            state = self.state(event.stream_id)
            state.fed += len(event.data)
            if state.error is not None:  # abandoned: count it as taken so the connection's credit is not lost
                self._consume(event.stream_id, state, len(event.data))
            else:
                state.decoder.feed(event.data)
            if event.end_stream:
                state.ended = True
            state.readable.set()
            if is_new:
                self.stream_opened(event.stream_id)
        elif isinstance(event, events.StreamReset | events.StopSendingReceived):
            state = self.state(event.stream_id)
            if isinstance(event, events.StopSendingReceived):
                self._quic.reset_stream(event.stream_id, CANCELLED)
                self._transmit_soon()
            state.error = StreamClosed(f"quic: the peer closed stream {event.stream_id} (code {event.error_code:#x})")
            state.readable.set()
            state.writable.set()
        elif isinstance(event, events.ConnectionTerminated):
            self.lost = ConnectionLost(f"quic: the connection closed ({event.reason_phrase or 'code ' + hex(event.error_code)})")
            for state in self.streams.values():
                if state.error is None:
                    state.error = self.lost
                state.readable.set()
                state.writable.set()

    def stream_opened(self, stream_id: int) -> None:
        """A stream the peer opened; servers start handling it here."""

    # -- reading -------------------------------------------------------------------

    def _consume(self, stream_id: int, state: StreamState, n: int) -> None:
        state.consumed += n
        self.consumed_total += n
        stream = stream_of(self._quic, stream_id)
        due = stream is not None and stream.max_stream_data_local and \
            raised_limit(stream.max_stream_data_local, state.consumed, self.window) != stream.max_stream_data_local
        limit = connection_limits(self._quic)[0]
        if due or raised_limit(limit.value, self.consumed_total, self.connection_window) != limit.value:
            self._transmit_soon()

    def _credit(self, stream_id: int, state: StreamState, *, waiting: bool) -> None:
        """Count as taken what left the decoder; while the reader waits for the rest of a frame, also what the
        decoder holds (committed to that frame), so a frame larger than the window can still arrive whole."""
        taken = state.fed if waiting else state.fed - state.decoder.buffered
        if taken > state.consumed:
            self._consume(stream_id, state, taken - state.consumed)

    async def read_frame(self, stream_id: int, max_frame: int | None = None) -> bytes | None:
        """The next frame body on a stream, or None at its clean end. ``max_frame`` refuses (FrameError) a frame whose
        header announces more, as soon as the header is read: nothing of it is buffered."""
        state = self.state(stream_id)
        while True:
            body = state.decoder.next(max_frame)
            if body is not None:
                self._credit(stream_id, state, waiting=False)
                return body
            if state.error is not None and not (state.ended and state.error is self.lost):
                raise state.error  # a connection lost after the peer's end leaves a whole stream to read
            if state.ended:
                state.decoder.check_end()
                return None
            self._credit(stream_id, state, waiting=True)
            state.readable.clear()
            await state.readable.wait()

    # -- writing -------------------------------------------------------------------

    async def write(self, stream_id: int, data: bytes | list[bytes], end: bool = False) -> None:
        """Queue ``data`` (bytes, or pieces sent one after the other) on a stream once it holds less than a window;
        StreamClosed/ConnectionLost if it cannot be sent."""
        parts = data if isinstance(data, list) else [data]
        size = sum(len(p) for p in parts)
        if len(parts) > 1 and size < JOIN_BELOW:  # a token's frame: one call into aioquic is cheaper than a copy saved
            parts = [b"".join(parts)]
        state = self.state(stream_id)
        while True:
            if state.error is not None:
                raise state.error
            if may_send(send_buffered(self._quic, stream_id), size, self.window):
                break
            state.writable.clear()
            self._waiting_writers.add(stream_id)
            try:
                await state.writable.wait()
            finally:
                self._waiting_writers.discard(stream_id)
        try:
            for i, part in enumerate(parts):
                if part or (end and i == len(parts) - 1):
                    self._quic.send_stream_data(stream_id, part, end and i == len(parts) - 1)
        except (AssertionError, ValueError) as exc:  # aioquic asserts on a reset or finished stream
            raise StreamClosed(f"quic: stream {stream_id} can no longer be written: {exc}") from None
        take_sender(self._quic, stream_id)  # (a stream's first write, its opening frame, is the one that goes to a bytearray)
        self._transmit_soon()

    def cancel(self, stream_id: int, code: int = CANCELLED) -> None:
        """Stop reading a stream (STOP_SENDING) and drop what it buffered."""
        state = self.state(stream_id)
        if state.error is None:
            state.error = StreamClosed(f"quic: stream {stream_id} was cancelled here")
        state.decoder = FrameDecoder()
        self._credit(stream_id, state, waiting=False)
        if self.lost is None:
            try:
                self._quic.stop_stream(stream_id, code)
                stream = stream_of(self._quic, stream_id)
                if stream is not None and not stream.sender.is_finished:
                    self._quic.reset_stream(stream_id, code)
            except (AssertionError, ValueError):
                pass
            self._transmit_soon()

    def abandon(self, reason: str) -> None:
        """Close the connection now; every stream on it fails with ConnectionLost at once."""
        self.quic_event_received(events.ConnectionTerminated(error_code=0, frame_type=None, reason_phrase=reason))
        self.close()
        self.transmit()

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)

    # -- credit: replaces aioquic's (which follows arrival, not consumption) ---------

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        if not stream.max_stream_data_local:  # locally created unidirectional streams
            return
        state = self.streams.get(stream.stream_id)
        consumed = state.consumed if state is not None else stream.receiver.highest_offset
        stream.max_stream_data_local = raised_limit(stream.max_stream_data_local, consumed, self.window)
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(QuicFrameType.MAX_STREAM_DATA, capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                                      handler=self._quic._on_max_stream_data_delivery, handler_args=(stream,))
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        quic = self._quic
        max_data, streams_bidi, streams_uni = connection_limits(quic)
        max_data.value = raised_limit(max_data.value, self.consumed_total, self.connection_window)
        for limit in (max_data, streams_bidi, streams_uni):
            if limit is not max_data and limit.sent - limit.used >= limit.value - limit.sent:
                continue  # batch MAX_STREAMS, as aioquic does
            if limit.value != limit.sent:
                buf = builder.start_frame(limit.frame_type, capacity=CONNECTION_LIMIT_FRAME_CAPACITY,
                                          handler=quic._on_connection_limit_delivery, handler_args=(limit,))
                buf.push_uint_var(limit.value)
                limit.sent = limit.value


__all__ = ["CANCELLED", "FAILED", "REFUSED", "FlowProtocol", "FrameError", "StreamState"]
