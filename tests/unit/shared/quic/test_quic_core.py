"""The data plane's I/O-free parts: frames, tickets, credit arithmetic."""

from __future__ import annotations

import random

import pytest
from seeds import SEED

from shared.gen.tessera.v1 import chat_pb2, tensor_pb2
from shared.quic import FrameDecoder, FrameError, StreamRefused, TicketBook, encode, split_addr
from shared.quic.flow import may_send, raised_limit


def test_frames_survive_any_split() -> None:
    rng = random.Random(SEED)
    messages = [chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text=f"tok{i} ", index=i, citations=[i % 3])) for i in range(50)]
    messages.append(tensor_pb2.TensorFrame(tile=tensor_pb2.Tile(index=1, offset=[0, 1, 2, 3], data=rng.randbytes(70_000))))
    wire = b"".join(encode(m) for m in messages)
    decoder, bodies, i = FrameDecoder(), [], 0
    while i < len(wire):
        step = rng.randint(1, 5000)
        decoder.feed(wire[i:i + step])
        i += step
        while (body := decoder.next()) is not None:
            bodies.append(body)
    decoder.check_end()
    assert bodies == [m.SerializeToString() for m in messages]


def test_an_empty_message_is_a_frame_too() -> None:
    decoder = FrameDecoder()
    decoder.feed(encode(chat_pb2.ChatEvent()))
    assert decoder.next() == b""


def test_oversized_and_truncated_frames_are_errors() -> None:
    decoder = FrameDecoder(max_frame=100)
    decoder.feed((101).to_bytes(4, "big"))
    with pytest.raises(FrameError, match="over the 100-byte limit"):
        decoder.next()
    cut = FrameDecoder()
    cut.feed(encode(chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text="hello")))[:-2])
    assert cut.next() is None
    with pytest.raises(FrameError, match="ended inside a frame"):
        cut.check_end()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def nothing():  # type: ignore[no-untyped-def]
    yield chat_pb2.ChatEvent()


def test_a_ticket_is_single_use() -> None:
    book = TicketBook(30)
    token, ttl = book.issue("tessera.v1.ChatEvent", nothing)
    assert len(token) == 32 and ttl == 30
    assert book.redeem(token).frame_type == "tessera.v1.ChatEvent"
    with pytest.raises(StreamRefused) as err:
        book.redeem(token)
    assert err.value.code == "PERMISSION_DENIED" and "already used" in err.value.message


def test_unknown_and_malformed_tokens_are_refused() -> None:
    book = TicketBook(30)
    book.issue("x", nothing)
    for token in (bytes(32), b"", b"short"):
        with pytest.raises(StreamRefused) as err:
            book.redeem(token)
        assert err.value.code == "PERMISSION_DENIED" and "never issued" in err.value.message


def test_expired_tickets_are_refused_and_reported_once() -> None:
    clock, expired = Clock(), []
    book = TicketBook(5, clock=clock)
    token, _ = book.issue("x", nothing, on_expire=lambda: expired.append(1))
    clock.now += 6
    with pytest.raises(StreamRefused) as err:
        book.redeem(token)
    assert err.value.code == "DEADLINE_EXCEEDED" and "expired 1.0 s ago" in err.value.message
    book.sweep()
    assert expired == [1]  # on_expire ran once, at the refusal
    other, _ = book.issue("x", nothing, on_expire=lambda: expired.append(2))
    clock.now += 6
    book.sweep()
    assert expired == [1, 2]
    clock.now += 3600
    book.sweep()
    with pytest.raises(StreamRefused, match="never issued"):  # forgotten after a while
        book.redeem(other)


def test_too_many_pending_tickets_are_refused() -> None:
    book = TicketBook(30, max_pending=2)
    book.issue("x", nothing)
    book.issue("x", nothing)
    with pytest.raises(StreamRefused) as err:
        book.issue("x", nothing)
    assert err.value.code == "RESOURCE_EXHAUSTED"


def test_credit_follows_consumption_not_arrival() -> None:
    window = 1000
    assert raised_limit(1000, 0, window) == 1000  # nothing taken: no new credit, however much arrived
    assert raised_limit(1000, 499, window) == 1000
    assert raised_limit(1000, 500, window) == 1500  # half a window taken: a window past what was taken
    assert raised_limit(1500, 1400, window) == 2400


def test_sender_window() -> None:
    assert may_send(0, 10_000, 1000)  # one frame larger than the window may go when nothing waits
    assert may_send(500, 500, 1000)
    assert not may_send(501, 500, 1000)


def test_addresses() -> None:
    assert split_addr("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert split_addr("[::1]:9000") == ("::1", 9000)
    with pytest.raises(ValueError, match="not a host:port"):
        split_addr("nohost")


def test_datagram_size_follows_the_path() -> None:
    from shared.quic.tls import datagram_size
    from shared.runtime.config import Settings

    assert datagram_size(Settings(), "127.0.0.1") == datagram_size(Settings(), "::1") == datagram_size(Settings(), "localhost") == 60000
    assert datagram_size(Settings(), "10.1.2.3") == datagram_size(Settings(), "chat.internal") == 1350
    assert datagram_size(Settings(quic_max_datagram_size=1400), "127.0.0.1") == 1400
