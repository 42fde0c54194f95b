"""What the README promises and no other test covered: loopback-only without keys, a full chat queue as
HTTP 429 with Retry-After, one rate limit shared by two gateways through Redis, answers read over the gRPC
transport, and `tessera eval beir` on a small BEIR folder."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from helpers import ADMIN, ROOT, Launcher, ServiceProcess, child_env, mesh_channel, service_ports, wait_serving

from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc
from shared.runtime.config import Settings, load_settings, settings_env

LONG = "Write a very long story about a lighthouse keeper and the sea, with many details."


def gateway_env(infra: Settings, **extra: str) -> dict[str, str]:
    ports = service_ports()
    return {**settings_env(infra), "TESSERA_GATEWAY_PORT": ports["TESSERA_GATEWAY_PORT"],
            "TESSERA_GATEWAY_GRPC_PORT": ports["TESSERA_GATEWAY_GRPC_PORT"], "TESSERA_GATEWAY_TLS_PORT": ports["TESSERA_GATEWAY_TLS_PORT"],
            **extra}


def listening_on(proc: ServiceProcess, port: int) -> set[str]:
    """The local addresses a process listens on at ``port`` (read from the kernel, no traffic)."""
    return {c.laddr.ip for c in psutil.Process(proc.proc.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


@pytest.mark.parametrize(("keys", "expected"), [("", {"127.0.0.1"}), ("k-one", {"0.0.0.0"})], ids=["no-keys", "keys"])
def test_the_http_api_listens_on_loopback_only_without_keys(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher,
                                                            keys: str, expected: set[str]) -> None:
    settings = load_settings(gateway_env(infra, TESSERA_HOST="0.0.0.0", TESSERA_GATEWAY_API_KEYS=keys))
    proc = launcher.start("gateway", settings)
    try:
        wait_serving(settings.with_overrides(host="127.0.0.1"), [proc])
        deadline = time.monotonic() + 30
        while not listening_on(proc, settings.gateway_port):
            assert time.monotonic() < deadline, "the HTTP port never opened"
            time.sleep(0.1)
        assert listening_on(proc, settings.gateway_port) == expected
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def busy_chat(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher) -> Iterator[Settings]:
    """A chat with one slot and a queue of one, and a gateway that reads its answers over gRPC."""
    env = gateway_env(infra, TESSERA_CHAT_PORT=service_ports()["TESSERA_CHAT_PORT"], TESSERA_CHAT_SLOTS="1",
                      TESSERA_CHAT_QUEUE_DEPTH="1", TESSERA_CHAT_MAX_TOKENS="1900", TESSERA_GATEWAY_CHAT_TRANSPORT="grpc")
    settings = load_settings(env)
    chat = launcher.start("chat", settings)
    gateway = launcher.start("gateway", settings)
    wait_serving(settings, [chat, gateway])
    yield settings
    gateway.stop()
    chat.stop()


def test_answers_stream_over_the_grpc_transport(busy_chat: Settings) -> None:
    body = {"question": "Say hello.", "rag": False, "max_tokens": 12}
    with httpx.stream("POST", f"http://127.0.0.1:{busy_chat.gateway_port}/api/v1/chat", json=body, headers=ADMIN, timeout=120) as r:
        assert r.status_code == 200
        names = [line[6:].strip() for line in r.iter_lines() if line.startswith("event:")]
    assert "token" in names and names[-1] == "done"


async def test_a_full_chat_queue_is_http_429_with_retry_after(busy_chat: Settings) -> None:
    async with mesh_channel(busy_chat, busy_chat.address("chat")) as ch:
        stub = chat_pb2_grpc.ChatServiceStub(ch)
        request = chat_pb2.ChatRequest(messages=[chat_pb2.ChatMessage(role="user", content=LONG)], max_tokens=1900, temperature=0.8)
        first = stub.Chat(request, timeout=120)
        await first.read()  # generating: holds the only slot
        second = stub.Chat(request, timeout=120)
        await second.initial_metadata()  # admitted: waiting in line
        deadline = time.monotonic() + 10
        while (await stub.GetModel(chat_pb2.GetChatModelRequest(), timeout=5)).waiting != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        try:
            async with httpx.AsyncClient(headers=ADMIN, timeout=30) as client:
                r = await client.post(f"http://127.0.0.1:{busy_chat.gateway_port}/api/v1/chat", json={"question": LONG, "rag": False})
            assert r.status_code == 429, r.text
            assert int(r.headers["retry-after"]) >= 1
            assert "retry in about" in r.json()["error"]["message"]
        finally:
            first.cancel()
            second.cancel()


def test_one_rate_limit_across_two_gateways(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher) -> None:
    """Both gateways count the same key in the same Redis: 5 per minute in all, not 5 each."""
    gateways = []
    for _ in range(2):
        settings = load_settings(gateway_env(infra, TESSERA_GATEWAY_API_KEYS="k-shared", TESSERA_GATEWAY_RATE_LIMIT="5"))
        gateways.append((settings, launcher.start("gateway", settings)))
    try:
        for settings, proc in gateways:
            wait_serving(settings, [proc])
        if time.time() % 60 > 45:  # the limit counts per wall-clock minute: keep the 8 requests inside one
            time.sleep(61 - time.time() % 60)
        codes = []
        for i in range(8):
            settings = gateways[i % 2][0]
            r = httpx.get(f"http://127.0.0.1:{settings.gateway_port}/v1/models", headers={"authorization": "Bearer k-shared"}, timeout=30)
            codes.append(r.status_code)
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3, codes
    finally:
        for _, proc in gateways:
            proc.stop()


def test_eval_beir_on_a_small_folder(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    docs = {"d1": ("Kettle descaling", "Fill the kettle with vinegar and water, boil it and rinse twice."),
            "d2": ("Bike chains", "Lubricate a bicycle chain every 300 km with dry lube in summer."),
            "d3": ("Raft elections", "Raft elects a leader with randomized election timeouts."),
            "d4": ("Espresso", "The espresso machine brews at 93 degrees with 18 grams of coffee.")}
    queries = {"q1": "how do I descale my kettle with vinegar", "q2": "how often should a bicycle chain be lubricated",
               "q3": "how does raft elect its leader"}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": t, "text": x}) + "\n" for k, (t, x) in docs.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": x}) + "\n" for k, x in queries.items()))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")
    out = subprocess.run([sys.executable, "-m", "shared.cli", "eval", "beir", str(folder), "--split", "test", "--quiet"], cwd=ROOT,
                         env=child_env(infra), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["queries"] == 3 and result["documents"] == 4 and result["split"] == "test"
    for mode in ("lexical", "vector", "hybrid"):
        assert result[mode]["ndcg@10"] == pytest.approx(1.0), (mode, result[mode])  # each query's one document ranks first
        assert result[mode]["recall@100"] == 1.0
