"""The gateway over real HTTP: SSE event sequence, the OpenAI client unchanged, API keys and rate
limits, the 4xx cases, schemathesis over the OpenAPI document, stalled readers, and HTTP/3."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest
from helpers import ADMIN, Launcher, ServiceProcess, mesh_channel, service_ports, wait_serving

from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc, gateway_pb2, gateway_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from shared.ops.infra import free_port
from shared.runtime.certs import dev_certificate
from shared.runtime.config import Settings, load_settings, settings_env

KEYS = ("k-alpha", "k-beta")
RATE = 12


def parse_sse(text: str) -> tuple[list[tuple[str, Any]], int]:
    """(events as (name, data), keep-alive comments)."""
    events, comments = [], 0
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith(":"):
                comments += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events, comments


@pytest.fixture(scope="module")
def gw(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path) -> str:
    return f"http://127.0.0.1:{infra.gateway_port}"


@pytest.fixture(scope="module")
def keyed(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A second gateway: API keys, a small rate limit and body limit, fast keep-alives, and a certificate (HTTPS + HTTP/3)."""
    cert, key = dev_certificate(tmp_path_factory.mktemp("certs"))
    ports = service_ports()
    env = {**settings_env(infra), "TESSERA_GATEWAY_PORT": ports["TESSERA_GATEWAY_PORT"],
           "TESSERA_GATEWAY_GRPC_PORT": ports["TESSERA_GATEWAY_GRPC_PORT"], "TESSERA_GATEWAY_TLS_PORT": str(free_port()),
           "TESSERA_GATEWAY_API_KEYS": ",".join(KEYS), "TESSERA_GATEWAY_RATE_LIMIT": str(RATE), "TESSERA_GATEWAY_MAX_BODY_BYTES": "65536",
           "TESSERA_GATEWAY_KEEPALIVE_S": "0.01", "TESSERA_GATEWAY_CERTFILE": str(cert), "TESSERA_GATEWAY_KEYFILE": str(key)}
    settings = load_settings(env)
    proc = launcher.start("gateway", settings)
    wait_serving(settings, [proc])
    yield settings
    proc.stop()  # it registered with the session's NATS: later tests count instances


def keyed_url(s: Settings) -> str:
    return f"http://127.0.0.1:{s.gateway_port}"


async def test_sse_chat_event_sequence(gw: str) -> None:
    body = {"question": "How do I descale a kettle?", "filters": {"project": "home"}, "max_tokens": 100}
    async with httpx.AsyncClient(headers=ADMIN, timeout=120) as client, client.stream("POST", f"{gw}/api/v1/chat", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-accel-buffering"] == "no" and r.headers["cache-control"] == "no-cache"
        text = "".join([chunk async for chunk in r.aiter_text()])
    events, _ = parse_sse(text)
    names = [n for n, _ in events]
    assert names[-1] == "done" and names.count("done") == 1 and "error" not in names
    assert set(names) == {"token", "citation", "done"}
    announced: set[int] = set()
    for name, data in events:
        if name == "citation":
            assert data["path"].endswith(".md") and data["chunk_id"] and data["line_start"] >= 1
            announced.add(data["number"])
        elif name == "token":
            assert set(data["citations"]) <= announced  # a marker never arrives before its source
    done = events[-1][1]
    assert done["finish_reason"] in ("stop", "length") and done["conversation_id"]
    assert announced <= {s["number"] for s in done["sources"]}
    assert any(s["path"].endswith("kettle.md") for s in done["sources"])


async def test_non_streamed_native_answer(gw: str) -> None:
    async with httpx.AsyncClient(headers=ADMIN, timeout=120) as client:
        r = await client.post(f"{gw}/api/v1/chat", json={"question": "How do I descale a kettle?", "stream": False, "max_tokens": 60,
                                                         "filters": {"project": "home"}})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["answer"] and answer["conversation_id"] and answer["sources"]
        conv = (await client.get(f"{gw}/api/v1/conversations/{answer['conversation_id']}")).json()
        assert conv["messages"][-1]["content"] == answer["answer"]
        listed = (await client.get(f"{gw}/api/v1/conversations")).json()["conversations"]
        assert answer["conversation_id"] in [c["conversation_id"] for c in listed]


async def test_keepalive_comment_while_the_answer_is_prepared(keyed: Settings) -> None:
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    async with httpx.AsyncClient(headers=ADMIN, timeout=120) as client:
        r = await client.post(f"{keyed_url(keyed)}/api/v1/chat", headers=headers, json={"question": "Say hello.", "rag": False, "max_tokens": 8})
    events, comments = parse_sse(r.text)
    assert comments >= 1 and ": keep-alive" in r.text
    assert events[-1][0] == "done"


async def test_openai_client_streams_an_answer_with_citations(gw: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{gw}/v1", api_key=ADMIN["Authorization"].removeprefix("Bearer "))
    stream = await client.chat.completions.create(model="tessera", messages=[{"role": "user", "content": "How do I descale a kettle?"}],
                                                  stream=True, max_tokens=100, stream_options={"include_usage": True},
                                                  extra_body={"filters": {"project": "home"}})
    text, citations, finish, usage, sources = "", [], None, None, []
    async for chunk in stream:
        extra = chunk.model_extra or {}
        citations += extra.get("citations", [])
        sources = extra.get("sources", sources)
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text and finish in ("stop", "length")
    assert citations and all(c["chunk_id"] and c["path"] for c in citations)
    assert {c["number"] for c in citations} <= {s["number"] for s in sources}
    assert usage is not None and usage.completion_tokens > 0

    reply = await client.chat.completions.create(model="tessera", messages=[{"role": "user", "content": "How do I descale a kettle?"}],
                                                 max_tokens=60, extra_body={"filters": {"project": "home"}})
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
    assert "citations" in (reply.model_extra or {}) and reply.model_extra["sources"]

    models = [m.id async for m in client.models.list()]
    assert "all-MiniLM-L6-v2" in models and len(models) == 2
    emb = await client.embeddings.create(model="all-MiniLM-L6-v2", input=["descale a kettle", "lubricate a chain"])  # base64 on the wire
    assert [len(d.embedding) for d in emb.data] == [384, 384]
    async with httpx.AsyncClient(headers=ADMIN, timeout=30) as http:
        floats = (await http.post(f"{gw}/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "descale a kettle"})).json()
    assert max(abs(a - b) for a, b in zip(floats["data"][0]["embedding"], emb.data[0].embedding, strict=True)) < 1e-6
    await client.close()


async def test_api_keys_are_required_and_checked(keyed: Settings) -> None:
    url = keyed_url(keyed)
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(f"{url}/healthz")).status_code == 200  # health stays open
        r = await client.get(f"{url}/v1/models")
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]["message"]
        assert r.headers["www-authenticate"] == "Bearer"
        r = await client.get(f"{url}/v1/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["message"] == "the API key is not valid"
        r = await client.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEYS[0]}"})
        assert r.status_code == 200
    bad = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="wrong")
    with pytest.raises(openai.AuthenticationError):
        await bad.models.list()
    await bad.close()


async def test_rate_limit_per_key(keyed: Settings) -> None:
    url = keyed_url(keyed)
    codes, retry = [], None
    async with httpx.AsyncClient(headers=ADMIN, timeout=30) as client:
        # Twice the limit and two more: whichever minute windows they land in, one window overflows.
        for _ in range(2 * RATE + 2):
            r = await client.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEYS[1]}"})
            codes.append(r.status_code)
            if r.status_code == 429:
                retry = r
        other = await client.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEYS[0]}"})
    assert set(codes) == {200, 429}
    assert retry is not None and int(retry.headers["retry-after"]) >= 1 and "rate limit" in retry.json()["error"]["message"]
    assert other.status_code == 200  # the limit is per key


CASES = [
    ("POST", "/api/v1/search", b"{not json", 400, "not valid JSON"),
    ("POST", "/api/v1/search", {"query": 5}, 422, "query"),
    ("POST", "/api/v1/search", {"query": "x", "top_k": "many"}, 422, "top_k"),
    ("POST", "/api/v1/search", {"query": "x", "bogus": 1}, 422, "bogus: unknown field"),
    ("POST", "/api/v1/search", {}, 422, "query: Field required"),
    ("POST", "/api/v1/search", [1, 2], 422, "invalid request"),
    ("POST", "/api/v1/chat", {"question": ""}, 422, "question"),
    ("POST", "/api/v1/chat", {"question": "hi", "conversation_id": "nope"}, 404, "not a conversation id"),
    ("POST", "/api/v1/notes", {"title": "x", "body": "y", "type": "bad type!"}, 422, "type"),
    ("GET", "/api/v1/related", None, 400, "exactly one of document_id or path"),
    ("GET", "/api/v1/conversations/00000000-0000-4000-8000-000000000000", None, 404, "no conversation"),
    ("POST", "/api/v1/chat", {"question": "hi", "purpose": "mine"}, 422, "purpose"),
    ("GET", "/api/v1/conversations?purpose=mine", None, 422, "purpose"),
    ("POST", "/api/v1/chat", {"question": "hi", "filters": {"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}},
     400, "created_after must be before"),
    ("PATCH", "/api/v1/conversations/00000000-0000-4000-8000-000000000000", {"title": "x"}, 404, "no conversation"),
    ("PATCH", "/api/v1/conversations/nope", {"title": "x"}, 400, "not a conversation id"),
    ("PATCH", "/api/v1/conversations/00000000-0000-4000-8000-000000000000", {"title": ""}, 422, "title"),
    ("PATCH", "/api/v1/conversations/00000000-0000-4000-8000-000000000000", {"title": " \t "}, 400, "1 to 200 characters"),
    ("DELETE", "/api/v1/conversations/00000000-0000-4000-8000-000000000000", None, 404, "no conversation"),
    ("DELETE", "/api/v1/conversations/nope", None, 400, "not a conversation id"),
    ("POST", "/v1/chat/completions", {"model": "tessera", "messages": []}, 422, "messages"),
    ("POST", "/v1/chat/completions", {"model": "tessera", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 422, "n"),
    ("POST", "/v1/chat/completions", {"model": "tessera", "messages": [{"role": "tool", "content": "hi"}]}, 422, "role"),
    ("POST", "/v1/chat/completions", {"model": "tessera", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 422, "content"),
    ("POST", "/v1/chat/completions", {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "no model"),
    ("POST", "/v1/chat/completions", {"model": "tessera", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message"),
    ("POST", "/v1/embeddings", {"model": "other", "input": "x"}, 404, "no embedding model"),
    ("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": []}, 400, "1 to 256 texts"),
    ("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "x", "dimensions": 8}, 400, "dimensions"),
    ("POST", "/api/v1/ingest", {"path": "notes"}, 400, "must be an absolute path"),
    ("POST", "/api/v1/ingest", {"path": "/etc"}, 403, "outside"),
    ("GET", "/api/v1/jobs?limit=201", None, 422, "limit"),
    ("GET", "/api/v1/documents/nope/view", None, 404, "no document"),
    ("GET", "/api/v1/documents?limit=0", None, 422, "limit"),
    ("POST", "/api/v1/markdown", {"text": 5}, 422, "text"),
]


async def test_conversations_by_purpose_renamed_and_deleted(gw: str) -> None:
    """The tools' runs (purpose eval, bench) stay out of the default list; rename and delete; an answer being generated
    keeps its conversation (409) until it ends."""
    async with httpx.AsyncClient(headers=ADMIN, timeout=120) as http:
        ids = {}
        for purpose in ("user", "eval", "bench"):
            r = await http.post(f"{gw}/api/v1/chat", json={"question": f"Say {purpose}.", "rag": False, "max_tokens": 2, "stream": False,
                                                           "purpose": purpose})
            assert r.status_code == 200, r.text
            ids[purpose] = r.json()["conversation_id"]
        for asked, present in (("user", {"user"}), ("eval", {"eval"}), ("bench", {"bench"}), ("all", {"user", "eval", "bench"})):
            listed = (await http.get(f"{gw}/api/v1/conversations", params={"purpose": asked, "limit": 500})).json()["conversations"]
            got = {c["conversation_id"]: c["purpose"] for c in listed}
            assert {p for p, cid in ids.items() if cid in got} == present, (asked, got)
            assert all(p == asked for p in got.values()) or asked == "all"
        default = (await http.get(f"{gw}/api/v1/conversations")).json()["conversations"]
        assert {c["purpose"] for c in default} == {"user"}

        r = await http.patch(f"{gw}/api/v1/conversations/{ids['user']}", json={"title": "  Saying   user  "})
        assert r.status_code == 200 and r.json()["title"] == "Saying user", r.text
        assert (await http.get(f"{gw}/api/v1/conversations/{ids['user']}")).json()["title"] == "Saying user"
        r = await http.delete(f"{gw}/api/v1/conversations/{ids['user']}")
        assert r.status_code == 200 and r.json()["messages"] == 2, r.text
        assert (await http.get(f"{gw}/api/v1/conversations/{ids['user']}")).status_code == 404
        assert (await http.delete(f"{gw}/api/v1/conversations/{ids['user']}")).status_code == 404

        # a conversation whose answer is being generated is kept until the answer ends
        refused: list[str] = []
        for topic in ("a lighthouse keeper", "a baker in the mountains", "a river pilot"):
            async with http.stream("POST", f"{gw}/api/v1/chat", json={"question": f"Write a long story about {topic}.",
                                                                       "rag": False, "max_tokens": 400}) as stream:
                busy = stream.headers["x-conversation-id"]  # known once admitted, before the first token
                async for line in stream.aiter_lines():
                    if line.startswith("event: token"):
                        break
                r = await http.delete(f"{gw}/api/v1/conversations/{busy}")
                if r.status_code == 409:
                    assert "being generated" in r.json()["error"]["message"], r.text
                    refused.append(busy)
                    break
                # the model may end a short answer before the delete arrives (its KV cache can change a token, and so
                # the story): that conversation was rightly deleted, and another story is asked for
                assert r.status_code == 200, r.text
        assert refused, "every story ended before its delete arrived"
        assert (await http.get(f"{gw}/api/v1/conversations/{refused[0]}")).status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), CASES)
async def test_bad_input_gets_a_4xx_with_a_sentence(gw: str, method: str, path: str, body: Any, status: int, words: str) -> None:
    async with httpx.AsyncClient(headers=ADMIN, timeout=60) as client:
        if isinstance(body, bytes):
            r = await client.request(method, gw + path, content=body, headers={"content-type": "application/json"})
        else:
            r = await client.request(method, gw + path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["status"] == status and words in err["message"], err


async def test_oversized_bodies_get_413(keyed: Settings) -> None:
    url, headers = keyed_url(keyed), {"Authorization": f"Bearer {KEYS[0]}", "content-type": "application/json"}
    big = json.dumps({"query": "x" * 100_000}).encode()

    async def chunked() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    async with httpx.AsyncClient(headers=ADMIN, timeout=30) as client:
        r = await client.post(f"{url}/api/v1/search", content=big, headers=headers)
        assert r.status_code == 413 and "larger than the gateway accepts" in r.json()["error"]["message"]
        r = await client.post(f"{url}/api/v1/search", content=chunked(), headers=headers)  # no Content-Length
        assert r.status_code == 413


async def test_capture_note_writes_a_file_and_indexes_it(gw: str, infra: Settings) -> None:
    async with httpx.AsyncClient(headers=ADMIN, timeout=60) as client:
        r = await client.post(f"{gw}/api/v1/notes", json={"title": "Harbour radar", "body": "The radar mast needs new bearings in March.",
                                                          "project": "coast", "tags": ["ocean"]})
        assert r.status_code == 201, r.text
        note = r.json()
        text = Path(note["path"]).read_text()
        assert text.startswith("---\ntitle: Harbour radar\n") and "project: coast" in text and "new bearings" in text
        job = (await client.get(f"{gw}/api/v1/jobs/{note['job_id']}")).json()
        assert job["files"][0]["document_id"] == note["document_id"]
        hits = (await client.post(f"{gw}/api/v1/search", json={"query": "radar mast bearings", "mode": "lexical"})).json()["hits"]
        assert hits and hits[0]["document_id"] == note["document_id"]
    async with mesh_channel(infra, infra.address("gateway")) as ch:
        reply = await gateway_pb2_grpc.GatewayServiceStub(ch).CaptureNote(
            gateway_pb2.CaptureNoteRequest(title="Harbour radar", body="Second note, same title."), timeout=30)
        assert reply.document_id and reply.path != note["path"] and Path(reply.path).is_file()  # never overwrites
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await gateway_pb2_grpc.GatewayServiceStub(ch).CaptureNote(gateway_pb2.CaptureNoteRequest(title=""), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "title" in err.value.details()


async def test_a_capture_retried_with_its_idempotency_key_leaves_one_note(gw: str, infra: Settings) -> None:
    """A client whose connection was cut cannot know whether its capture was stored: it sends it again with the same
    key, and the one note is replaced (force skips the near-duplicate check, which would otherwise hide a second copy)."""
    body = {"title": "Tide gauge", "body": "The tide gauge float sticks at low water; clean the stilling well.", "project": "coast-retry",
            "force": True}
    async with httpx.AsyncClient(headers=ADMIN, timeout=60) as client:
        first = await client.post(f"{gw}/api/v1/notes", json=body, headers={"Idempotency-Key": "retry-0001-abcd"})
        again = await client.post(f"{gw}/api/v1/notes", json=body, headers={"Idempotency-Key": "retry-0001-abcd"})
        other = await client.post(f"{gw}/api/v1/notes", json=body, headers={"Idempotency-Key": "retry-0002-abcd"})
        bad = await client.post(f"{gw}/api/v1/notes", json=body, headers={"Idempotency-Key": "../../etc/x"})
        listed = (await client.get(f"{gw}/api/v1/documents", params={"project": "coast-retry"})).json()["documents"]
    async with mesh_channel(infra, infra.address("ingest")) as ch:  # through ingest, their owner: no other test sees them
        for doc in listed:
            await ingest_pb2_grpc.IngestServiceStub(ch).DeleteDocument(ingest_pb2.DeleteDocumentRequest(document_id=doc["document_id"]), timeout=30)
    assert first.status_code == again.status_code == other.status_code == 201, (first.text, again.text, other.text)
    assert again.json()["document_id"] == first.json()["document_id"] and again.json()["path"] == first.json()["path"]
    assert other.json()["document_id"] != first.json()["document_id"], "another key is another capture"
    assert bad.status_code == 422 and "Idempotency-Key" in bad.text, bad.text
    assert len(listed) == 2, [d["path"] for d in listed]


def test_schemathesis_finds_no_server_error(gw: str, tmp_path: Path) -> None:
    """Property-based requests from the OpenAPI document, chat included (answers capped at 8 tokens by st_hooks):
    no 5xx, and every response as documented (status code, content type, body schema, headers)."""
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": "st_hooks",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{gw}/openapi.json", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
         "--max-examples", "12", "--seed", "1", "--request-timeout", "120", "--phases", "examples,fuzzing",
         "--header", f"Authorization: {ADMIN['Authorization']}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def gateway_rss_kb(proc: ServiceProcess) -> int:
    for line in Path(f"/proc/{proc.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_fifty_stalled_readers_keep_memory_flat_and_free_the_model(gw: str, infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    host, port = "127.0.0.1", infra.gateway_port
    body = json.dumps({"question": "Write a long story about the sea.", "rag": False, "max_tokens": 256, "temperature": 0.8}).encode()
    request = (f"POST /api/v1/chat HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAuthorization: {ADMIN['Authorization']}\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    before = gateway_rss_kb(mesh["gateway"])
    socks = []
    for _ in range(50):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # tiny window: the reader really stalls
        s.connect((host, port))
        s.sendall(request)
        socks.append(s)
    async with httpx.AsyncClient(headers=ADMIN, timeout=30) as client:
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while (status := (await client.get(f"{gw}/api/v1/status")).json()["gateway"])["open_streams"] < 40:
            assert loop.time() < end, f"only {status['open_streams']} of 50 streams opened in 30 s"
            await asyncio.sleep(0.1)
        grown = gateway_rss_kb(mesh["gateway"]) - before
        assert status["open_streams"] >= 40  # admitted and streaming (or waiting for a slot)
        assert status["relay_high_water"] <= status["relay_capacity"]
        assert grown < 40_000, f"gateway grew {grown} kB with 50 stalled readers"
        # The gateway still answers others while they stall.
        assert (await client.get(f"{gw}/healthz")).status_code == 200
        for s in socks:
            s.close()
        async with mesh_channel(infra, infra.address("chat")) as ch:
            stub = chat_pb2_grpc.ChatServiceStub(ch)
            end = time.monotonic() + 60
            while True:
                info = await stub.GetModel(chat_pb2.GetChatModelRequest(), timeout=5)
                streams = (await client.get(f"{gw}/api/v1/status")).json()["gateway"]["open_streams"]
                if info.busy == 0 and info.waiting == 0 and streams == 0:
                    break
                assert time.monotonic() < end, f"still busy={info.busy} waiting={info.waiting} streams={streams}"
                await asyncio.sleep(0.2)


async def h3_get(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One GET over HTTP/3 (aioquic), trusting any certificate: the test's own."""
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    class Client(QuicConnectionProtocol):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.h3 = H3Connection(self._quic)
            self.done: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
            self.status, self.body = 0, b""

        def quic_event_received(self, event: Any) -> None:
            for ev in self.h3.handle_event(event):
                if isinstance(ev, HeadersReceived):
                    self.status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, DataReceived):
                    self.body += ev.data
                if getattr(ev, "stream_ended", False) and not self.done.done():
                    self.done.set_result((self.status, self.body))

    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, verify_mode=ssl.CERT_NONE, server_name="localhost")
    async with connect("127.0.0.1", port, configuration=config, create_protocol=Client) as client:
        assert isinstance(client, Client)
        stream = client._quic.get_next_available_stream_id()
        client.h3.send_headers(stream, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost"), (b":path", path.encode()),
                                        *[(k.encode(), v.encode()) for k, v in headers.items()]], end_stream=True)
        client.transmit()
        return await asyncio.wait_for(client.done, 10)


async def test_http3_and_https_with_a_certificate(keyed: Settings) -> None:
    status, body = await h3_get(keyed.gateway_tls_port, "/healthz", {})
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, body = await h3_get(keyed.gateway_tls_port, "/v1/models", {"authorization": f"Bearer {KEYS[0]}"})
    assert status == 200 and json.loads(body)["object"] == "list"
    status, body = await h3_get(keyed.gateway_tls_port, "/", {})  # the web page and its assets, over HTTP/3 too
    assert status == 200 and b'<script type="module" src="/web/app.js">' in body
    status, body = await h3_get(keyed.gateway_tls_port, "/web/app.js", {})
    assert status == 200 and b"function route()" in body
    async with httpx.AsyncClient(verify=False, timeout=10) as client:
        r = await client.get(f"https://127.0.0.1:{keyed.gateway_tls_port}/healthz")
        assert r.status_code == 200 and "h3" in r.headers.get("alt-svc", "")


async def test_http2_over_https_with_an_http2_client(keyed: Settings) -> None:
    async with httpx.AsyncClient(http2=True, verify=False, timeout=10) as client:
        r = await client.get(f"https://127.0.0.1:{keyed.gateway_tls_port}/healthz")
        page = await client.get(f"https://127.0.0.1:{keyed.gateway_tls_port}/")
        docs = await client.get(f"https://127.0.0.1:{keyed.gateway_tls_port}/docs/assets/swagger-ui-bundle.js")
    assert r.status_code == 200 and r.http_version == "HTTP/2" and r.json() == {"status": "ok"}
    assert page.status_code == 200 and page.http_version == "HTTP/2" and "default-src 'self'" in page.headers["content-security-policy"]
    assert docs.status_code == 200 and docs.http_version == "HTTP/2"


def test_openapi_document_is_served(gw: str) -> None:
    doc = httpx.get(f"{gw}/openapi.json", headers=ADMIN, timeout=10).json()
    assert {"/api/v1/chat", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/api/v1/notes"} <= set(doc["paths"])
