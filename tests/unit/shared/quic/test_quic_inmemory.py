"""Two data-plane connections wired together in memory (no sockets), as aioquic's own tests do:
credit follows what the reader consumes, and what the data plane changes of aioquic stays on its own streams."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aioquic.quic import events
from aioquic.quic.connection import QuicConnection
from aioquic.quic.stream import QuicStreamSender

from shared.gen.tessera.v1 import common_pb2
from shared.quic import _aioquic_compat as compat
from shared.quic.frames import encode
from shared.quic.protocol import FlowProtocol
from shared.quic.tls import certificates, client_configuration, server_configuration
from shared.runtime.config import Settings

WINDOW = 64 * 1024
CONNECTION_WINDOW = 4 * WINDOW
FRAME = 8 * 1024  # one frame body: 8 KiB of payload
FRAMES = 64  # 512 KiB in all: eight stream windows


class Wire:
    """The datagram transport of one end: what it sends arrives at the other end on the next loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, source: tuple[str, int]) -> None:
        self.loop, self.source = loop, source
        self.peer: FlowProtocol | None = None
        self.closed = False
        self.datagrams: list[int] = []

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self.datagrams.append(len(data))
        if self.peer is not None and not self.closed:
            self.loop.call_soon(self.peer.datagram_received, data, self.source)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def get_protocol(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def wired(tmp_path: Path) -> tuple[FlowProtocol, FlowProtocol, Wire]:
    settings = Settings(data_dir=tmp_path, quic_stream_window=WINDOW, quic_connection_window=CONNECTION_WINDOW)
    cafile = certificates(settings).cafile
    client_quic = QuicConnection(configuration=client_configuration(settings, "127.0.0.1", cafile))
    server_quic = QuicConnection(configuration=server_configuration(settings, "127.0.0.1"),
                                 original_destination_connection_id=client_quic.original_destination_connection_id)
    client = FlowProtocol(client_quic, window=WINDOW, connection_window=CONNECTION_WINDOW)
    server = FlowProtocol(server_quic, window=WINDOW, connection_window=CONNECTION_WINDOW)
    loop = asyncio.get_running_loop()
    to_server, to_client = Wire(loop, ("127.0.0.1", 50001)), Wire(loop, ("127.0.0.1", 4433))
    to_server.peer, to_client.peer = server, client
    client.connection_made(to_server)  # type: ignore[arg-type]
    server.connection_made(to_client)  # type: ignore[arg-type]
    client.connect(("127.0.0.1", 4433))
    await asyncio.wait_for(client.wait_connected(), 10)
    return client, server, to_client


async def settle(turns: int = 50) -> None:
    for _ in range(turns):
        await asyncio.sleep(0.001)


async def test_credit_follows_consumption_and_frames_stay_small(tmp_path: Path) -> None:
    client, server, to_client = await wired(tmp_path)
    stream_id = client._quic.get_next_available_stream_id()
    await client.write(stream_id, encode(common_pb2.StreamOpen(token=b"t")))  # opens the stream at the server
    await settle()
    assert stream_id in server.streams

    body = common_pb2.StreamReply(message="x" * FRAME)
    sent: list[int] = []

    async def produce() -> None:
        for i in range(FRAMES):
            await server.write(stream_id, encode(body), end=i == FRAMES - 1)
            sent.append(i)

    producer = asyncio.create_task(produce())
    await settle(200)
    state = client.streams[stream_id]
    # Nothing read yet: the server may send one window, not more, and stops (its writer waits).
    assert 0 < state.fed <= WINDOW, state.fed
    assert not producer.done() and len(sent) < FRAMES
    stalled_at = state.fed
    await settle(100)
    assert state.fed == stalled_at, "no credit arrives while the reader takes nothing"

    received = 0
    while (frame := await asyncio.wait_for(client.read_frame(stream_id), 10)) is not None:
        assert common_pb2.StreamReply.FromString(frame).message == body.message
        received += 1
        assert state.fed <= state.consumed + WINDOW + len(encode(body)), "credit never runs ahead of consumption by more than a window"
    await asyncio.wait_for(producer, 10)
    assert received == FRAMES and state.consumed == state.fed

    assert max(to_client.datagrams) > compat.NARROW_FRAME_MAX, "loopback datagrams carry more than aioquic's largest STREAM frame"
    # The send buffer sits on the data plane's own stream senders, never on aioquic's class.
    sender = compat.stream_of(server._quic, stream_id).sender
    assert isinstance(sender._buffer, compat.SendBuffer)
    assert "get_frame" not in vars(sender) and QuicStreamSender.get_frame.__qualname__ == "QuicStreamSender.get_frame"


def test_the_compat_check_names_what_is_missing(monkeypatch: Any) -> None:
    import aioquic

    monkeypatch.setattr(aioquic, "__version__", "9.9.9")
    try:
        compat.check()
    except ImportError as exc:
        assert "aioquic 9.9.9" in str(exc) and "1.7.2" in str(exc)
    else:
        raise AssertionError("an unsupported aioquic must be refused")
    monkeypatch.undo()
    monkeypatch.delattr(QuicConnection, "_write_connection_limits")
    try:
        compat.check()
    except ImportError as exc:
        assert "QuicConnection._write_connection_limits" in str(exc)
    else:
        raise AssertionError("a missing private method must be named")


def test_the_send_buffer_behaves_as_aioquic_s_bytearray() -> None:
    """SendBuffer against a bytearray doing aioquic's three things (append, slice from the start, drop a prefix), with
    small writes joined and large ones kept whole, at random; then aioquic's own uses found in its source."""
    import random

    rng = random.Random(11)
    model, buf = bytearray(), compat.SendBuffer()
    for step in range(3000):
        op = rng.random()
        if op < 0.45:
            n = rng.choice([0, 1, 7, 300, compat.SMALL_WRITE - 1, compat.SMALL_WRITE, 200_000])
            data = bytes(rng.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1)
            model += data[:n]
            buf += data[:n]
        elif op < 0.8 and model:
            a = rng.randrange(len(model))
            b = rng.randrange(a, len(model) + 1)
            assert buf[a:b] == bytes(model[a:b]), step
            assert isinstance(buf[a:b], bytes)
        elif model:
            n = rng.randrange(len(model) + 1)
            del model[:n]
            del buf[:n]
        assert len(buf) == len(model), step
    assert buf[0:len(model)] == bytes(model)
    assert len(buf._pieces) <= len(model) // compat.SMALL_WRITE + 2 + sum(1 for p in buf._pieces if isinstance(p, bytes))


async def test_large_frames_in_parts_arrive_whole_through_the_send_buffer(tmp_path: Path) -> None:
    """Frames of 200 KiB written as header and body (no join) through a SendBuffer arrive byte for byte in STREAM frames
    larger than a 2-byte length allows, acknowledged bytes leave the buffer, and the buffer is on the data plane's
    sender only."""
    from shared.quic.frames import encode_parts

    client, server, _ = await wired(tmp_path)
    stream_id = client._quic.get_next_available_stream_id()
    await client.write(stream_id, encode(common_pb2.StreamOpen(token=b"t")))
    await settle()
    bodies = [common_pb2.StreamReply(message=chr(65 + i) * 200_000) for i in range(8)]

    async def produce() -> None:
        for i, body in enumerate(bodies):
            await server.write(stream_id, encode_parts(body), end=i == len(bodies) - 1)

    pieces: list[int] = []  # the data of each STREAM frame that arrived
    received = client.quic_event_received

    def counted(event: Any) -> None:
        if isinstance(event, events.StreamDataReceived):
            pieces.append(len(event.data))
        received(event)

    client.quic_event_received = counted  # type: ignore[method-assign]
    producer = asyncio.create_task(produce())
    got = []
    while (frame := await asyncio.wait_for(client.read_frame(stream_id), 10)) is not None:
        got.append(common_pb2.StreamReply.FromString(frame).message)
    await asyncio.wait_for(producer, 10)
    assert got == [b.message for b in bodies]
    # a 4-byte length: one STREAM frame fills a loopback datagram (aioquic's 2-byte length stops at 16383 bytes)
    assert max(pieces) > compat.NARROW_FRAME_MAX and sum(pieces) > 8 * 200_000, max(pieces)
    sender = compat.stream_of(server._quic, stream_id).sender
    assert isinstance(sender._buffer, compat.SendBuffer)
    await settle()
    assert len(sender._buffer) == sender._buffer_stop - sender._buffer_start < WINDOW
    assert isinstance(QuicStreamSender(0, True)._buffer, bytearray), "aioquic's own senders keep their bytearray"
