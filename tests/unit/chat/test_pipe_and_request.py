"""The token pipe (model thread → event loop, bounded) and the checks of a ChatRequest."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from services.chat.pipe import END, TokenPipe
from services.chat.request import MAX_MESSAGES, parse_request
from shared.errors import InvalidArgument
from shared.gen.tessera.v1 import chat_pb2


async def test_the_pipe_hands_tokens_over_in_order_and_blocks_a_fast_producer() -> None:
    pipe = TokenPipe(asyncio.get_running_loop(), size=2, stall_s=5.0)
    put_times: list[float] = []

    def produce() -> None:
        for i in range(5):
            assert pipe.put(f"t{i}")
            put_times.append(time.monotonic())
        pipe.put(END)

    thread = threading.Thread(target=produce)
    thread.start()
    await asyncio.sleep(0.3)
    assert len(put_times) <= 3, "a full pipe holds the producer (2 queued, 1 waiting)"
    got = []
    while (item := await pipe.get()) is not END:
        got.append(item)
    await asyncio.to_thread(thread.join, 5)
    assert got == [f"t{i}" for i in range(5)]


async def test_the_model_thread_does_not_wait_for_the_event_loop() -> None:
    """Puts return while the loop is busy (here: blocked in a callback until three tokens are in). Before, each put
    waited for the loop to take its token, so this waited out its bound with one token in."""
    pipe = TokenPipe(asyncio.get_running_loop(), size=8, stall_s=5.0)
    three = threading.Event()

    def produce() -> None:
        for i in range(3):
            assert pipe.put(f"t{i}")
        three.set()
        pipe.put(END)

    thread = threading.Thread(target=produce)
    thread.start()
    assert three.wait(5), "the model thread waited for the busy event loop"  # (blocks the loop on purpose)
    await asyncio.to_thread(thread.join, 5)
    assert [await pipe.get(), *pipe.ready()] == ["t0", "t1", "t2", END], "tokens ready together are taken together"


async def test_a_lone_token_is_taken_at_once() -> None:
    """The reader takes one token without waiting for more: the producer puts the next only after the reader has it."""
    pipe = TokenPipe(asyncio.get_running_loop(), size=8, stall_s=5.0)
    taken = threading.Event()

    def produce() -> None:
        pipe.put("alone")
        assert taken.wait(5)
        pipe.put(END)

    thread = threading.Thread(target=produce)
    thread.start()
    assert [await asyncio.wait_for(pipe.get(), 5), *pipe.ready()] == ["alone"]
    taken.set()
    assert await asyncio.wait_for(pipe.get(), 5) is END
    await asyncio.to_thread(thread.join, 5)


async def test_a_reader_that_stops_taking_is_given_up_on() -> None:
    pipe = TokenPipe(asyncio.get_running_loop(), size=1, stall_s=0.3)
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.extend(pipe.put(str(i)) for i in range(3)))
    thread.start()
    await asyncio.to_thread(thread.join, 5)
    assert results[0] is True and results[-1] is False
    assert pipe.stalled and pipe.cancel.is_set()


async def test_a_cancelled_pipe_refuses_more_tokens() -> None:
    pipe = TokenPipe(asyncio.get_running_loop(), size=4, stall_s=5.0)
    pipe.cancel.set()
    assert await asyncio.to_thread(pipe.put, "x") is False


def user(text: str) -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(role="user", content=text)


def test_a_request_is_taken_apart() -> None:
    req = chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="system", content="Be brief."), user("first"),
                                         chat_pb2.ChatMessage(role="assistant", content="ok"), user("  the question  ")],
                               max_tokens=50, temperature=0.5)
    question, turns, system, sampling = parse_request(req, max_tokens_cap=200)
    assert question == "the question" and [t.role for t in turns] == ["user", "assistant"] and system == "Be brief."
    assert (sampling.max_tokens, sampling.temperature, sampling.top_p) == (50, 0.5, 1.0)
    assert parse_request(chat_pb2.ChatRequest(messages=[user("q")]), 200)[3].max_tokens == 200  # 0: the server's cap


@pytest.mark.parametrize(("request_", "words"), [
    (chat_pb2.ChatRequest(), "messages is empty"),
    (chat_pb2.ChatRequest(messages=[user("q")] * (MAX_MESSAGES + 1)), "at most 200"),
    (chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="robot", content="q")]), "messages[0].role is 'robot'"),
    (chat_pb2.ChatRequest(messages=[user("x" * 64_001)]), "64001 characters"),
    (chat_pb2.ChatRequest(messages=[user("q"), chat_pb2.ChatMessage(role="assistant", content="a")]), "last message must be"),
    (chat_pb2.ChatRequest(messages=[user("   ")]), "last message must be"),
    (chat_pb2.ChatRequest(messages=[user("q")], max_tokens=201), "at most 200"),
    (chat_pb2.ChatRequest(messages=[user("q")], temperature=2.5), "expected 0 to 2"),
    (chat_pb2.ChatRequest(messages=[user("q")], top_p=1.5), "expected 0 to 1"),
    (chat_pb2.ChatRequest(messages=[user("q")], top_k_sources=21), "at most 20"),
    (chat_pb2.ChatRequest(messages=[user("q")], stop=["a"] * 5), "at most 4 strings"),
])
def test_bad_requests_say_what_is_wrong(request_: chat_pb2.ChatRequest, words: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_request(request_, max_tokens_cap=200)
    assert words in str(err.value) and str(err.value).startswith("chat: ") and err.value.code == "INVALID_ARGUMENT"
