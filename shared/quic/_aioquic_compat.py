"""Everything the data plane takes from aioquic beyond its public API, in one place, checked at import.

The data plane changes these things of aioquic (pinned at 1.7.2), each on its own
connections only, never on aioquic's classes:

* credit: a connection's ``_write_stream_limits`` and ``_write_connection_limits``
  are replaced on the instance with ones that follow what the application has
  consumed (aioquic grows receive limits as data arrives);
* frame size: aioquic writes a STREAM frame's length as a 2-byte varint, so a frame
  may carry at most NARROW_FRAME_MAX bytes. The data plane's connections write it as a
  4-byte varint instead (``wide_stream_frames``, on the instance), so one frame fills a
  60 kB loopback datagram. Hypercorn's HTTP/3 and any other aioquic user in the process
  keep aioquic's own;
* pacing: the pacer may burst one event-loop tick of packets (``coarse_pacing``);
* send buffer: each of the data plane's stream senders keeps its unacknowledged bytes
  in a :class:`SendBuffer` instead of aioquic's one ``bytearray``. Acknowledged bytes
  leave a bytearray from the front, and CPython's next append then moves everything
  still in flight back to the start (``PyByteArray_Resize``): with a 4 MiB window,
  every 1 MiB tile written moved up to 4 MiB (17 % of a bulk sender's CPU).

It also reads private state: a stream's unacknowledged send buffer, the
connection's MAX_DATA limit, a stream's receive limit and offsets.

On import, the aioquic version and the presence of every attribute used here are
checked on real objects; a mismatch raises ImportError naming what is missing, so
an upgrade of aioquic fails loudly instead of silently going back to credit that
follows arrival.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable
from typing import Any

import aioquic
from aioquic.asyncio.server import QuicServer
from aioquic.buffer import size_uint_var
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import CONNECTION_LIMIT_FRAME_CAPACITY, MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection, QuicFrameType
from aioquic.quic.stream import QuicStream, QuicStreamSender

#: The aioquic releases whose private attributes this module was written against.
SUPPORTED_VERSIONS = ("1.7.2",)
#: The largest STREAM frame aioquic writes: its length in 2 bytes (a varint, at most 16383).
NARROW_FRAME_MAX = 16383
#: How aioquic's sender uses its buffer: append, a slice relative to its start, and a deletion from the front. SendBuffer
#: does these three; check() finds each in aioquic's source.
SENDER_BUFFER_USES = ("self._buffer += data", "self._buffer[start - self._buffer_start : stop - self._buffer_start]",
                      "del self._buffer[:size]")
#: What aioquic 1.7.2's ``_write_stream_frame`` writes for a frame's length, which ``wide_stream_frames`` widens.
NARROW_LENGTH = "buf.push_uint16(len(frame.data) | 0x4000)"
#: Writes smaller than this are joined into the buffer's last piece, so the pieces stay few (a slice walks them).
SMALL_WRITE = 64 * 1024
#: asyncio sleeps in whole milliseconds (epoll's timeout), so a pacing wait is never shorter.
TIMER_GRANULARITY_S = 0.001

__all__ = [
    "CONNECTION_LIMIT_FRAME_CAPACITY", "MAX_STREAM_DATA_FRAME_CAPACITY", "NARROW_FRAME_MAX", "QuicFrameType", "SendBuffer", "check",
    "coarse_pacing", "connection_limits", "install_credit", "send_buffered", "server_protocols",
    "server_transport", "stream_of", "take_sender", "unacknowledged_streams", "wide_stream_frames",
]


def _missing(obj: object, names: tuple[str, ...], where: str) -> list[str]:
    return [f"{where}.{n}" for n in names if not hasattr(obj, n)]


def check() -> None:
    """Raise ImportError unless aioquic is a supported version and has every attribute this module uses."""
    version = getattr(aioquic, "__version__", "?")
    if version not in SUPPORTED_VERSIONS:
        raise ImportError(f"quic: aioquic {version} is installed, but the data plane is written against {', '.join(SUPPORTED_VERSIONS)} "
                          "(it replaces private methods of aioquic's connection); install the pinned version")
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True))
    stream = QuicStream(stream_id=0, max_stream_data_local=1024, max_stream_data_remote=1024, writable=True, readable=True)
    missing = [
        *_missing(QuicConnection, ("_write_stream_limits", "_write_connection_limits", "_on_max_stream_data_delivery",
                                   "_on_connection_limit_delivery", "get_next_available_stream_id"), "QuicConnection"),
        *_missing(quic, ("_local_max_data", "_local_max_streams_bidi", "_local_max_streams_uni", "_streams", "_loss"), "connection"),
        *_missing(getattr(quic, "_local_max_data", None), ("value", "sent", "used", "frame_type"), "connection._local_max_data"),
        *_missing(getattr(getattr(quic, "_loss", None), "_pacer", None), ("update_rate", "bucket_max", "packet_time"),
                  "connection._loss._pacer"),
        *_missing(stream, ("stream_id", "max_stream_data_local", "max_stream_data_local_sent", "receiver", "sender"), "QuicStream"),
        *_missing(stream.receiver, ("highest_offset",), "QuicStream.receiver"),
        *_missing(stream.sender, ("_buffer", "_buffer_start", "_buffer_stop", "is_finished", "get_frame"), "QuicStream.sender"),
        *([] if isinstance(getattr(stream.sender, "_buffer", None), bytearray) else ["QuicStream.sender._buffer (a bytearray)"]),
        *[f"QuicStreamSender: {use}" for use in SENDER_BUFFER_USES if use not in inspect.getsource(QuicStreamSender)],
        *([] if NARROW_LENGTH in inspect.getsource(QuicConnection._write_stream_frame) else
          [f"QuicConnection._write_stream_frame: {NARROW_LENGTH}"]),
        *_missing(QuicFrameType, ("MAX_STREAM_DATA",), "QuicFrameType"),
        *[f"QuicServer.{name}" for name in ("_transport", "_protocols") if f"self.{name}" not in inspect.getsource(QuicServer.__init__)],
    ]
    if missing:
        raise ImportError(f"quic: aioquic {version} lacks what the data plane uses: {', '.join(missing)}")


check()


def server_transport(server: QuicServer) -> Any:
    """The UDP transport an aioquic server reads from (for socket buffers and batched reads)."""
    return server._transport


def server_protocols(server: QuicServer) -> list[Any]:
    """The connections an aioquic server holds (one protocol may appear under several connection ids)."""
    return list(dict.fromkeys(server._protocols.values()))


def install_credit(quic: QuicConnection, stream_limits: Callable[[Any, Any, Any], None],
                   connection_limits: Callable[[Any, Any], None]) -> None:
    """Make this connection advertise receive limits with these writers (credit that follows consumption)."""
    quic._write_stream_limits = stream_limits  # type: ignore[method-assign, assignment]
    quic._write_connection_limits = connection_limits  # type: ignore[method-assign, assignment]


def wide_stream_frames(quic: QuicConnection) -> None:
    """Make this connection write each STREAM frame's length as a 4-byte varint instead of aioquic's 2-byte one, so one
    frame fills a 60 kB loopback datagram (a 2-byte length caps a frame at NARROW_FRAME_MAX bytes: four frames, each
    with its own Python work). Any QUIC receiver reads either length."""

    def write_stream_frame(builder: Any, space: Any, stream: Any, max_offset: int) -> int:
        sender = stream.sender
        overhead = 5 + size_uint_var(stream.stream_id) + (size_uint_var(sender.next_offset) if sender.next_offset else 0)
        before = sender.highest_offset
        frame = sender.get_frame(builder.remaining_flight_space - overhead, max_offset)
        if frame is None:
            return 0
        frame_type = QuicFrameType.STREAM_BASE | 2 | (4 if frame.offset else 0) | (1 if frame.fin else 0)  # length, offset, fin
        buf = builder.start_frame(frame_type, capacity=overhead, handler=sender.on_data_delivery,
                                  handler_args=(frame.offset, frame.offset + len(frame.data), frame.fin))
        buf.push_uint_var(stream.stream_id)
        if frame.offset:
            buf.push_uint_var(frame.offset)
        buf.push_uint32(len(frame.data) | 0x80000000)
        buf.push_bytes(frame.data)
        return int(sender.highest_offset - before)

    patched: Any = quic  # (a private method replaced on this instance only)
    patched._write_stream_frame = write_stream_frame


def stream_of(quic: QuicConnection, stream_id: int) -> Any:
    """aioquic's QuicStream for an id, or None (not opened yet, or discarded)."""
    return quic._streams.get(stream_id)


def send_buffered(quic: QuicConnection, stream_id: int) -> int:
    """Bytes written to a stream and not yet acknowledged by the peer."""
    stream = stream_of(quic, stream_id)
    if stream is None:
        return 0
    return int(stream.sender._buffer_stop - stream.sender._buffer_start)


def unacknowledged_streams(quic: QuicConnection) -> int:
    """Streams of this connection whose data or end the peer has not acknowledged yet (closing now would lose it)."""
    return sum(1 for stream in list(quic._streams.values()) if not stream.sender.is_finished)


def connection_limits(quic: QuicConnection) -> tuple[Any, Any, Any]:
    """The connection's receive limits: MAX_DATA, MAX_STREAMS (bidirectional), MAX_STREAMS (unidirectional)."""
    return quic._local_max_data, quic._local_max_streams_bidi, quic._local_max_streams_uni


class SendBuffer:
    """A stream sender's unacknowledged bytes as pieces: appending keeps what is there in place, dropping from the
    front releases whole pieces, and a slice copies only the bytes it returns. Small writes (under SMALL_WRITE) are
    joined into the last piece, so a window holds at most window / SMALL_WRITE + 1 pieces plus the large writes."""

    __slots__ = ("_dropped", "_pieces", "_size")

    def __init__(self, data: bytes | bytearray = b"") -> None:
        self._pieces: deque[bytes | bytearray] = deque()
        self._dropped = 0  # bytes of the first piece already dropped
        self._size = 0
        if data:
            self += data

    def __len__(self) -> int:
        return self._size

    def __iadd__(self, data: bytes | bytearray | memoryview) -> SendBuffer:
        n = len(data)
        if not n:
            return self
        last = self._pieces[-1] if self._pieces else None
        if n < SMALL_WRITE and isinstance(last, bytearray) and len(last) < SMALL_WRITE:
            last += data
        elif n < SMALL_WRITE:
            self._pieces.append(bytearray(data))
        else:
            self._pieces.append(bytes(data))
        self._size += n
        return self

    def __getitem__(self, where: slice) -> bytes:
        start, stop, step = where.indices(self._size)
        if step != 1:
            raise ValueError("SendBuffer: slices are contiguous")
        out, pos = [], -self._dropped  # pos: where the current piece starts, relative to the buffer's start
        for piece in self._pieces:
            end = pos + len(piece)
            if end > start:
                if pos >= stop:
                    break
                out.append(piece[max(start - pos, 0):min(stop - pos, len(piece))])
            pos = end
        if len(out) == 1:
            return bytes(out[0]) if isinstance(out[0], bytearray) else out[0]
        return b"".join(out)

    def __delitem__(self, where: slice) -> None:
        if where.start not in (None, 0) or where.step not in (None, 1) or where.stop is None:
            raise ValueError("SendBuffer: only a prefix is dropped")
        n = min(where.stop, self._size)
        self._size -= n
        n += self._dropped
        while self._pieces and n >= len(self._pieces[0]):
            n -= len(self._pieces.popleft())
        self._dropped = n if self._pieces else 0


def take_sender(quic: QuicConnection, stream_id: int) -> None:
    """Keep the unacknowledged bytes of one of this connection's stream senders in a SendBuffer (once; what it already
    holds is moved there)."""
    stream = stream_of(quic, stream_id)
    if stream is None or isinstance(stream.sender._buffer, SendBuffer):
        return
    held: Any = stream.sender  # (its buffer replaced on this instance only)
    held._buffer = SendBuffer(stream.sender._buffer)


def coarse_pacing(quic: QuicConnection) -> None:
    """Let this connection's pacer burst one timer tick of packets.

    aioquic paces in bursts of at most 16 datagrams, then waits one packet time
    (microseconds on a fast path); the event loop turns that wait into a whole
    millisecond, so throughput stalls at 16 datagrams per millisecond. A burst
    of one tick's worth at the same pacing rate keeps the rate and drops the stall.
    """
    pacer = quic._loss._pacer
    update_rate = pacer.update_rate

    def coarse(congestion_window: int, smoothed_rtt: float) -> None:
        update_rate(congestion_window, smoothed_rtt)
        if pacer.packet_time is not None:
            pacer.bucket_max = max(pacer.bucket_max, TIMER_GRANULARITY_S + pacer.packet_time)

    pacer.update_rate = coarse  # type: ignore[method-assign]
