"""Chat generating through an OpenAI-compatible server: llama-cpp-python's own `python -m llama_cpp.server`
serving the small GGUF. Retrieval, citations, cancellation, the queue and conversations stay in Tessera."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from helpers import Launcher, ServiceProcess, mesh_channel, service_ports, wait_serving

from services.chat.profiles import model_path
from shared.contracts import NOT_IN_NOTES
from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc, common_pb2
from shared.ops.infra import free_port
from shared.runtime import secrets
from shared.runtime.config import Settings, load_settings, settings_env

LONG = "Write a long story about a lighthouse keeper and the sea, with many details."


@contextlib.contextmanager
def served_gguf(folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m llama_cpp.server` on the small GGUF, answering /v1/models; stopped on the way out."""
    _, gguf = model_path("smollm2-135m", "", Path("/nonexistent"))
    port = free_port()
    log = folder / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--n_threads", "1", "--n_ctx", "2048",
                                 "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    proc.url = f"http://127.0.0.1:{port}/v1"  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"{proc.url}/models", timeout=1).status_code == 200:  # type: ignore[attr-defined]
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not answer /v1/models"
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(15)


@contextlib.contextmanager
def chat_on(infra: Settings, launcher: Launcher, url: str) -> Iterator[Settings]:
    """A chat service of its own, generating through the OpenAI-compatible server at ``url``."""
    env = {**settings_env(infra), "TESSERA_CHAT_PORT": service_ports()["TESSERA_CHAT_PORT"], "TESSERA_CHAT_BACKEND": "openai",
           "TESSERA_CHAT_BACKEND_URL": url, "TESSERA_CHAT_SLOTS": "1", "TESSERA_CHAT_QUEUE_DEPTH": "2"}
    settings = load_settings(env)
    proc = launcher.start("chat", settings)
    try:
        wait_serving(settings, [proc])
        yield settings
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    with served_gguf(tmp_path_factory.mktemp("llama-server")) as proc:
        yield proc


@pytest.fixture(scope="module")
def remote_chat(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher, llama_server: Any) -> Iterator[Settings]:
    with chat_on(infra, launcher, llama_server.url) as settings:
        yield settings


@pytest.fixture
async def stub(remote_chat: Settings) -> AsyncIterator[chat_pb2_grpc.ChatServiceStub]:
    async with mesh_channel(remote_chat, remote_chat.address("chat")) as ch:
        yield chat_pb2_grpc.ChatServiceStub(ch)


def user(text: str) -> list[chat_pb2.ChatMessage]:
    return [chat_pb2.ChatMessage(role="user", content=text)]


async def test_the_model_is_the_remote_one_and_passed_its_self_test(stub: chat_pb2_grpc.ChatServiceStub) -> None:
    info = await stub.GetModel(chat_pb2.GetChatModelRequest(), timeout=5)
    assert info.backend == "openai" and info.name  # the id the server lists at /models
    assert info.selftest.startswith("self-test passed:")


async def test_a_rag_answer_cites_real_chunks_through_the_backend(stub: chat_pb2_grpc.ChatServiceStub, home_notes: Path) -> None:
    events = [e async for e in stub.Chat(chat_pb2.ChatRequest(messages=user("How do I descale a kettle?"), rag=True, max_tokens=80,
                                                              filters=common_pb2.Filters(project="home")), timeout=120)]
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "done" and "error" not in kinds, events[-1]
    answer = "".join(e.token.text for e in events if e.HasField("token"))
    cited = [e.citation for e in events if e.HasField("citation")]
    assert answer.strip() and not answer.startswith(NOT_IN_NOTES)
    assert any(c.source.path.endswith("kettle.md") and c.source.line_start >= 1 and c.source.chunk_id for c in cited), answer
    done = events[-1].done
    assert done.completion_tokens > 0 and done.finish_reason in ("stop", "length", "loop")
    conv = await stub.GetConversation(chat_pb2.GetConversationRequest(conversation_id=done.conversation_id), timeout=5)
    assert conv.messages[-1].content == answer and conv.messages[-1].finish_reason == done.finish_reason


async def test_an_unsupported_question_abstains_without_the_backend(stub: chat_pb2_grpc.ChatServiceStub, home_notes: Path) -> None:
    events = [e async for e in stub.Chat(chat_pb2.ChatRequest(messages=user("Who won the football world cup in 2022?"), rag=True,
                                                              filters=common_pb2.Filters(project="home")), timeout=60)]
    assert events[-1].done.finish_reason == "abstained" and events[-1].done.completion_tokens == 0
    text = "".join(e.token.text for e in events if e.HasField("token"))
    assert text.startswith(NOT_IN_NOTES) and "Closest notes:" in text and ".md:" in text


async def test_cancel_closes_the_backend_stream_and_frees_the_slot(stub: chat_pb2_grpc.ChatServiceStub, remote_chat: Settings) -> None:
    call = stub.Chat(chat_pb2.ChatRequest(messages=user(LONG), max_tokens=500, temperature=0.8, seed=3), timeout=120)
    conversation = {k: v for k, v in (await call.initial_metadata() or ())}["x-conversation-id"]
    got = 0
    async for ev in call:
        got += ev.HasField("token")
        if got == 3:
            break
    assert (await stub.GetModel(chat_pb2.GetChatModelRequest(), timeout=5)).busy == 1
    call.cancel()
    cancelled = time.monotonic()
    while (await stub.GetModel(chat_pb2.GetChatModelRequest(), timeout=5)).busy:
        assert time.monotonic() - cancelled < 1.0, "the slot was not free within 1 s of the cancel"
        await asyncio.sleep(0.02)
    with psycopg.connect(secrets.database_url(remote_chat)) as conn:
        finish, tokens = conn.execute("SELECT finish_reason, completion_tokens FROM messages WHERE conversation_id = %s "
                                      "AND role = 'assistant'", (conversation,)).fetchone()  # type: ignore[misc]
    assert finish == "cancelled" and 3 <= tokens < 100  # stopped long before max_tokens
    events = [e async for e in stub.Chat(chat_pb2.ChatRequest(messages=user("Say hello."), max_tokens=8), timeout=60)]
    assert events[-1].HasField("done")


@pytest.fixture
def doomed(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher, tmp_path: Path) -> Iterator[tuple[Any, Settings]]:
    """A server and a chat of their own, for the test that kills the server: the module's stays up for the others."""
    with served_gguf(tmp_path) as server, chat_on(infra, launcher, server.url) as settings:
        yield server, settings


async def test_a_dead_backend_is_an_unavailable_error_with_a_sentence(doomed: tuple[Any, Settings]) -> None:
    server, settings = doomed
    server.terminate()
    server.wait(15)
    async with mesh_channel(settings, settings.address("chat")) as ch:
        events = [e async for e in chat_pb2_grpc.ChatServiceStub(ch).Chat(chat_pb2.ChatRequest(messages=user("Say hello."), max_tokens=8),
                                                                          timeout=60)]
    assert events[-1].HasField("error"), events[-1]
    err = events[-1].error
    assert err.code == "UNAVAILABLE" and err.message.startswith("chat: the backend") and "Traceback" not in err.message
