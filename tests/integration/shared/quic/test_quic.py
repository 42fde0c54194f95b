"""The QUIC data plane on real loopback sockets with real TLS: tickets, refusals, flow control, reuse and reconnects."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from shared.gen.tessera.v1 import chat_pb2, common_pb2, tensor_pb2
from shared.quic import ConnectionLost, QuicClient, QuicServer, StreamRefused, encode, split_addr
from shared.runtime.config import Settings

MiB = 1024 * 1024


def tile(i: int, size: int = MiB) -> tensor_pb2.TensorFrame:
    return tensor_pb2.TensorFrame(tile=tensor_pb2.Tile(index=i, offset=[0, i, 0, 0], shape=[1, 1, 1, size // 4],
                                                       dtype=tensor_pb2.DTYPE_FLOAT32, data=os.urandom(size)))


async def tiles(frames: list[tensor_pb2.TensorFrame]) -> AsyncIterator[tensor_pb2.TensorFrame]:
    for f in frames:
        yield f


async def tokens(n: int, gap_s: float = 0.0) -> AsyncIterator[chat_pb2.ChatEvent]:
    for i in range(n):
        if gap_s:
            await asyncio.sleep(gap_s)
        yield chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text=f" w{i}", index=i))
    yield chat_pb2.ChatEvent(done=chat_pb2.ChatDone(finish_reason="stop", completion_tokens=n))


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[tuple[Settings, QuicServer, QuicClient]]:
    settings = Settings(data_dir=tmp_path, quic_stream_window=MiB, quic_ticket_ttl_s=5)
    server = await QuicServer(settings).start()
    client = QuicClient(settings)
    yield settings, server, client
    await client.close()
    await server.close()


async def test_tiles_and_tokens_share_one_connection(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    _, server, client = plane
    sent = [[tile(i, 256 * 1024 + s) for i in range(6)] for s in range(4)]

    async def read_tiles(frames: list[tensor_pb2.TensorFrame]) -> list[tensor_pb2.TensorFrame]:
        ticket = server.issue("tessera.v1.TensorFrame", lambda: tiles(frames))
        return [f async for f in await client.open(ticket, tensor_pb2.TensorFrame)]

    async def read_tokens() -> list[chat_pb2.ChatEvent]:
        ticket = server.issue("tessera.v1.ChatEvent", lambda: tokens(40, 0.001))
        return [e async for e in await client.open(ticket, chat_pb2.ChatEvent)]

    results = await asyncio.gather(*[read_tiles(f) for f in sent], *[read_tokens() for _ in range(4)])
    for got, want in zip(results[:4], sent, strict=True):
        assert got == want  # byte for byte, in order
    for events in results[4:]:
        assert [e.token.index for e in events[:-1]] == list(range(40)) and events[-1].done.completion_tokens == 40
    assert client.connects == 1
    assert server.stats.completed == 8


async def test_frames_larger_than_the_stream_window_arrive_whole(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    # A 2.5-window tile: the reader waiting inside a frame grants credit for it, or the stream would stall forever.
    settings, server, client = plane
    sent = [tile(i, int(2.5 * settings.quic_stream_window)) for i in range(3)]
    ticket = server.issue("tessera.v1.TensorFrame", lambda: tiles(sent))
    got = await asyncio.wait_for(_all(await client.open(ticket, tensor_pb2.TensorFrame)), 30)
    assert got == sent


async def test_wrong_reused_and_expired_tickets_are_refused_with_a_sentence(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    _, server, client = plane
    good = server.issue("tessera.v1.ChatEvent", lambda: tokens(3))
    wrong = common_pb2.StreamTicket(quic_addr=good.quic_addr, token=os.urandom(32), alpn="tessera/1")
    with pytest.raises(StreamRefused) as err:
        await client.open(wrong, chat_pb2.ChatEvent)
    assert err.value.code == "PERMISSION_DENIED" and "never issued" in err.value.message
    assert len([e async for e in await client.open(good, chat_pb2.ChatEvent)]) == 4
    with pytest.raises(StreamRefused) as err:
        await client.open(good, chat_pb2.ChatEvent)
    assert err.value.code == "PERMISSION_DENIED" and "already used" in err.value.message

    server.tickets.ttl_s = 0.2
    late = server.issue("tessera.v1.ChatEvent", lambda: tokens(3))
    await asyncio.sleep(0.4)
    with pytest.raises(StreamRefused) as err:
        await client.open(late, chat_pb2.ChatEvent)
    assert err.value.code == "DEADLINE_EXCEEDED" and "expired" in err.value.message

    # A first frame that is not a StreamOpen is refused too; the stream ends after the reply.
    proto = await client.connection(*split_addr(good.quic_addr))
    sid = proto._quic.get_next_available_stream_id()
    await proto.write(sid, encode(chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text="x" * 2000))), end=True)
    reply = common_pb2.StreamReply.FromString(await proto.read_frame(sid) or b"")
    assert reply.code == "INVALID_ARGUMENT" and "StreamOpen" in reply.message
    assert await proto.read_frame(sid) is None

    # Refusals cost nothing else: the same connection still carries a good stream.
    server.tickets.ttl_s = 5
    ok = server.issue("tessera.v1.ChatEvent", lambda: tokens(2))
    assert len([e async for e in await client.open(ok, chat_pb2.ChatEvent)]) == 3
    assert client.connects == 1 and server.stats.refused == 4


async def test_a_ticket_for_other_frames_is_an_error(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    _, server, client = plane
    ticket = server.issue("tessera.v1.TensorFrame", lambda: tiles([tile(0, 10)]))
    with pytest.raises(ValueError, match=r"streams tessera\.v1\.TensorFrame, not tessera\.v1\.ChatEvent"):
        await client.open(ticket, chat_pb2.ChatEvent)


async def test_a_server_the_ca_did_not_sign_is_refused(plane: tuple[Settings, QuicServer, QuicClient], tmp_path: Path) -> None:
    _, server, _ = plane
    stranger = QuicClient(Settings(data_dir=tmp_path / "elsewhere"))  # its own development CA
    ticket = server.issue("tessera.v1.ChatEvent", lambda: tokens(1))
    try:
        with pytest.raises(ConnectionLost, match="certificate the configured CA signed"):
            await stranger.open(ticket, chat_pb2.ChatEvent)
    finally:
        await stranger.close()


async def test_a_stalled_reader_stalls_only_its_own_stream(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    settings, server, client = plane
    produced = {"stalled": 0}
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[tensor_pb2.TensorFrame]:
        try:
            i = 0
            while True:
                produced["stalled"] += 1
                yield tile(i, 256 * 1024)
                i += 1
        finally:
            closed.set()

    stalled = await client.open(server.issue("tessera.v1.TensorFrame", endless), tensor_pb2.TensorFrame)
    first = await stalled.__anext__()
    assert first.tile.index == 0
    # The others finish while the stalled one reads nothing more.
    frames = [[tile(i, 256 * 1024) for i in range(24)] for _ in range(3)]
    others = [await client.open(server.issue("tessera.v1.TensorFrame", lambda f=f: tiles(f)), tensor_pb2.TensorFrame) for f in frames]
    got = await asyncio.wait_for(asyncio.gather(*[asyncio.create_task(_all(s)) for s in others]), 30)
    assert got == frames
    # The stalled producer ran only as far as its windows allow: the reader's credit plus the sender's buffer.
    await settled(lambda: produced["stalled"])
    bound = (2 * settings.quic_stream_window) // (256 * 1024) + 3
    assert produced["stalled"] <= bound, f"{produced['stalled']} tiles made for a reader that took one (bound {bound})"
    before = produced["stalled"]
    await settled(lambda: produced["stalled"])
    assert produced["stalled"] == before  # and then it waits
    stalled.cancel()  # leaving closes the producer (its finally runs)
    await asyncio.wait_for(closed.wait(), 5)


async def settled(value: Callable[[], int], polls: int = 10, every_s: float = 0.03, timeout_s: float = 10.0) -> None:
    """Until ``value()`` has not changed for ``polls`` looks in a row (bounded): the producer is blocked, not slow."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    last, same = value(), 0
    while same < polls:
        assert loop.time() < end, f"still changing after {timeout_s} s: {value()}"
        await asyncio.sleep(every_s)
        now = value()
        same = same + 1 if now == last else 0
        last = now


async def _all(stream: AsyncIterator[tensor_pb2.TensorFrame]) -> list[tensor_pb2.TensorFrame]:
    return [f async for f in stream]


async def test_a_lost_connection_fails_its_streams_and_the_next_open_reconnects(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    _, server, client = plane
    slow = await client.open(server.issue("tessera.v1.ChatEvent", lambda: tokens(1000, 0.01)), chat_pb2.ChatEvent)
    await slow.__anext__()
    client.lose(server.address)
    with pytest.raises(ConnectionLost):
        async for _ in slow:
            pass
    events = [e async for e in await client.open(server.issue("tessera.v1.ChatEvent", lambda: tokens(5)), chat_pb2.ChatEvent)]
    assert len(events) == 6 and client.connects == 2


async def test_an_idle_connection_closes_and_is_reopened(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, quic_idle_timeout_s=0.5)
    server = await QuicServer(settings).start()
    client = QuicClient(settings)
    try:
        for _ in range(2):
            events = [e async for e in await client.open(server.issue("tessera.v1.ChatEvent", lambda: tokens(2)), chat_pb2.ChatEvent)]
            assert len(events) == 3
            await asyncio.sleep(1.5)
        assert client.connects == 2
    finally:
        await client.close()
        await server.close()


async def test_a_drain_waits_for_the_peer_to_acknowledge_the_last_frames(plane: tuple[Settings, QuicServer, QuicClient]) -> None:
    # The producer is done once its last frame is queued; up to a window may still be unsent or unacknowledged.
    # Closing then would cut the reader's stream short (what a slow CI machine saw on chat's SIGTERM).
    _, server, client = plane
    sent = [tile(i, 256 * 1024) for i in range(8)]
    produced = asyncio.Event()

    async def producer() -> AsyncIterator[tensor_pb2.TensorFrame]:
        for frame in sent:
            yield frame
        produced.set()

    stream = await client.open(server.issue("tessera.v1.TensorFrame", producer), tensor_pb2.TensorFrame)
    got = [await stream.__anext__()]

    async def slow_reader() -> None:
        async for frame in stream:
            got.append(frame)
            await asyncio.sleep(0.05)

    reading = asyncio.create_task(slow_reader())
    await asyncio.wait_for(produced.wait(), 10)
    await server.drain(10.0)
    await server.close()
    await asyncio.wait_for(reading, 10)
    assert got == sent
