"""The MCP server driven by the official MCP client (ClientSession), over stdio (`tessera mcp`) and over streamable HTTP
(the gateway's /mcp): every tool, its annotations and structured output, the resource, bad input as tool errors, and
the HTTP surface's key and Origin checks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from helpers import ADMIN, ROOT, Launcher, ServiceProcess, child_env, service_ports, wait_serving
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from shared.runtime.config import Settings, load_settings, settings_env

KEY = "mcp-test-key"
TOOLS = {"search", "get", "multi_get", "capture", "related", "recent", "status", "ask", "edit", "delete"}


@contextlib.asynccontextmanager
async def stdio_session(settings: Settings) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "shared.cli", "mcp"], env=child_env(settings), cwd=str(ROOT))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def http_session(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers=headers or {}, timeout=120) as http, streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def session_for(transport: str, settings: Settings) -> AsyncIterator[ClientSession]:
    if transport == "stdio":
        async with stdio_session(settings) as session:
            yield session
    else:
        async with http_session(f"http://127.0.0.1:{settings.gateway_port}/mcp/", ADMIN) as session:
            yield session


def text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(session: ClientSession, tool: str, **arguments: Any) -> tuple[dict[str, Any], str]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, text(result)
    assert result.structured_content is not None, f"{tool} returned no structured content"
    return result.structured_content, text(result)


async def refused(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) should have been refused: {text(result)}"
    said = text(result)
    # A crash reads "Error executing tool <name>" and nothing more; a refusal carries the sentence that says why.
    sentence = said.removeprefix(f"Error executing tool {tool}: ")
    assert "Traceback" not in said and sentence.strip() and said != f"Error executing tool {tool}", said
    return sentence


@pytest.fixture(scope="module")
def notes(infra: Settings, home_notes: Path) -> Path:
    return home_notes


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_every_tool_over_both_transports(infra: Settings, notes: Path, transport: str) -> None:
    async with session_for(transport, infra) as session:
        assert session.instructions and "search" in session.instructions
        listed = {t.name: t for t in (await session.list_tools()).tools}
        assert set(listed) == TOOLS
        assert all(listed[name].annotations.read_only_hint for name in TOOLS - {"capture", "edit", "delete"})  # type: ignore[union-attr]
        assert listed["capture"].annotations.read_only_hint is False  # type: ignore[union-attr]
        assert listed["delete"].annotations.destructive_hint is True  # type: ignore[union-attr]
        assert all(listed[name].output_schema for name in TOOLS)

        found, said = await call(session, "search", query="descale kettle", project="home", limit=3)
        top = found["hits"][0]
        assert top["path"].endswith("kettle.md") and top["ref"] == f"{top['path']}:{top['line_start']}-{top['line_end']}"
        assert set(top["signals"]) == {"lexical", "vector"} and "kettle.md" in said

        doc, said = await call(session, "get", document=top["path"], from_line=1, max_lines=3)
        assert doc["from_line"] == 1 and doc["to_line"] == 3 and doc["text"].startswith("1  ---") and doc["truncated"]
        again, _ = await call(session, "get", document=top["document_id"], from_line=2, max_lines=2)
        assert again["text"].splitlines()[0].lstrip().startswith("2")

        many, said = await call(session, "multi_get", glob=f"*/{notes.name}/kettle.md", max_bytes=100_000)  # other tests' notes share the mesh
        assert [d["path"] for d in many["documents"]] == [top["path"]] and many["skipped"] == []
        small, _ = await call(session, "multi_get", paths=[str(notes / "kettle.md"), str(notes / "chain.md")], max_bytes=300)
        assert small["skipped"] and "max_bytes" in small["skipped"][-1]["reason"]

        linked, _ = await call(session, "related", document=top["document_id"])
        assert isinstance(linked["related"], list)
        recent, _ = await call(session, "recent", project="home", limit=5)
        assert {Path(d["path"]).name for d in recent["documents"]} >= {"kettle.md", "chain.md"}
        status, said = await call(session, "status")
        assert status["ok"] and status["documents"] >= 2 and any(p["name"] == "home" for p in status["projects"])

        title = f"MCP note over {transport}"
        saved, said = await call(session, "capture", title=title, body="Descale the kettle with citric acid every month.",
                                 tags=["mcp"], project="mcp-capture", force=True)  # force: the other transport's run saved the same note
        assert saved["document_id"] and saved["path"].endswith(".md") and "Saved" in said and not saved["duplicate"]
        copy, said = await call(session, "capture", title=title, body="Descale the kettle with citric acid every month.",
                                tags=["mcp"], project="mcp-capture")  # not "home": other tests search it, in any order
        assert copy["duplicate"] and copy["near_duplicates"] and copy["warning"].startswith("a repeat of"), copy
        assert "Not saved" in said and "force=true" in said and copy["document_id"] in {saved["document_id"], copy["near_duplicates"][0]["document_id"]}
        opened, _ = await call(session, "get", document=saved["document_id"])
        edited, said = await call(session, "edit", document=saved["document_id"], tags=["mcp", "edited"], content_hash=opened["content_hash"])
        assert edited["document_id"] == saved["document_id"] and edited["content_hash"] != opened["content_hash"] and "Edited" in said
        assert "tags:\n- mcp\n- edited" in Path(saved["path"]).read_text()
        stale = await refused(session, "edit", document=saved["document_id"], title="Overwritten", content_hash=opened["content_hash"])
        assert "changed since it was opened" in stale

        answer, said = await call(session, "ask", question="How do I descale a kettle?", project="home", timeout_s=120)
        assert answer["finish_reason"] and answer["conversation_id"] and answer["answer"]

        resource = await session.read_resource(f"tessera://doc/{top['document_id']}")
        assert "Kettle descaling" in resource.contents[0].text  # type: ignore[union-attr]


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_bad_input_is_a_tool_error_with_a_sentence(infra: Settings, notes: Path, transport: str) -> None:
    async with session_for(transport, infra) as session:
        assert "query is empty" in await refused(session, "search", query="  ")
        assert "no project named 'nowhere'" in await refused(session, "search", query="kettle", project="nowhere")
        assert "outside the configured roots" in await refused(session, "get", document="/etc/passwd")
        assert "max_bytes" in await refused(session, "multi_get", glob="*", max_bytes=10**9)
        assert "no document" in await refused(session, "get", document="00000000-0000-4000-8000-000000000000")
        assert "is not a document id" in await refused(session, "related", document="not-an-id")
        # A question the notes answer (the model must run), new to every cache (an abstention after a cached search
        # can come back within the 10 ms).
        question = f"How long does the vinegar stand in a kettle being descaled? ({transport} {uuid.uuid4().hex[:8]})"
        assert "no answer within" in await refused(session, "ask", question=question, project="home", timeout_s=0.01)
        missing = await session.call_tool("search", {})  # a required argument left out
        assert missing.is_error and "query" in text(missing).lower()


@pytest.fixture(scope="module")
def keyed_gateway(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher) -> Iterator[Settings]:
    ports = service_ports()
    env = {**settings_env(infra), "TESSERA_GATEWAY_PORT": ports["TESSERA_GATEWAY_PORT"],
           "TESSERA_GATEWAY_GRPC_PORT": ports["TESSERA_GATEWAY_GRPC_PORT"], "TESSERA_GATEWAY_TLS_PORT": ports["TESSERA_GATEWAY_TLS_PORT"],
           "TESSERA_GATEWAY_API_KEYS": KEY, "TESSERA_GATEWAY_ALLOWED_ORIGINS": "https://notes.example"}
    settings = load_settings(env)
    proc = launcher.start("gateway", settings)
    wait_serving(settings, [proc])
    yield settings
    proc.stop()


async def test_http_needs_the_key_and_an_allowed_origin(keyed_gateway: Settings, notes: Path) -> None:
    url = f"http://127.0.0.1:{keyed_gateway.gateway_port}/mcp/"
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as http:
        no_key = await http.post(url, json=hello, headers=accept)
        assert no_key.status_code == 401 and "API key" in no_key.json()["error"]["message"]
        wrong = await http.post(url, json=hello, headers={**accept, "Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        evil = await http.post(url, json=hello, headers={**accept, "Authorization": f"Bearer {KEY}", "Origin": "https://evil.example"})
        assert evil.status_code == 403 and "origin" in evil.json()["error"]["message"]
        host = await http.post(url, json=hello, headers={**accept, "Authorization": f"Bearer {KEY}", "Host": "attacker.example"})
        assert host.status_code == 403 and "TESSERA_GATEWAY_ALLOWED_HOSTS" in host.json()["error"]["message"]
    async with http_session(url, {"Authorization": f"Bearer {KEY}", "Origin": "https://notes.example"}) as session:
        found, _ = await call(session, "search", query="bike chain", project="home")
        assert found["hits"] and found["hits"][0]["path"].endswith("chain.md")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, body: bytes, pause_s: float) -> tuple[int, bytes]:
    """One request on an open connection, its body sent ``pause_s`` after its headers; the answer's status and body."""
    writer.write(head)
    await writer.drain()
    await asyncio.sleep(pause_s)
    writer.write(body)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 10)
    assert status_line, "the gateway closed the keep-alive connection instead of answering"
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return int(status_line.split()[1]), await reader.readexactly(length)


async def test_a_refused_request_whose_body_comes_late_keeps_the_connection(keyed_gateway: Settings) -> None:
    # The guard answers from the headers alone. Answering before the body arrived made Hypercorn close the
    # connection without a word, and a client's next request on it failed ("Server disconnected"), under load.
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}).encode()
    head = (f"POST /mcp/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", keyed_gateway.gateway_port)
    try:
        for _ in range(3):
            status, answer = await _exchange(reader, writer, head, body, pause_s=0.3)
            assert status == 401 and "API key" in json.loads(answer)["error"]["message"]
    finally:
        writer.close()


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_a_slow_tool_does_not_hold_up_others_on_the_session(infra: Settings, notes: Path, transport: str) -> None:
    async with session_for(transport, infra) as session:
        slow = asyncio.create_task(session.call_tool("ask", {"question": "How do I descale a kettle? Explain every step in detail.",
                                                             "project": "home", "timeout_s": 300}))
        await asyncio.sleep(0.3)  # the answer is being generated
        found, _ = await asyncio.wait_for(call(session, "search", query="bike chain", project="home"), 30)
        assert found["hits"], found
        assert not slow.done(), "the search should have come back while the answer was still being written"
        answer = await slow
        assert not answer.is_error, text(answer)


def test_tessera_capture_from_arguments_and_from_stdin(infra: Settings, notes: Path) -> None:
    # a project of its own: the shared "home" notes are what other tests search, in any order
    run = subprocess.run([sys.executable, "-m", "shared.cli", "capture", "Oil the bike chain every 300 km.", "--tag", "bike",
                          "--project", "cli-capture"], cwd=ROOT, env=child_env(infra), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    path = Path(run.stdout.split(" (document ")[0].strip())
    assert path.is_file() and "title: Oil the bike chain every 300 km." in path.read_text()
    piped = subprocess.run([sys.executable, "-m", "shared.cli", "capture", "--title", "From stdin", "--project", "cli-capture"], input="# Piped\n\nA note.\n",
                           cwd=ROOT, env=child_env(infra), capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and "From stdin" in Path(piped.stdout.split(" (document ")[0].strip()).read_text()
    empty = subprocess.run([sys.executable, "-m", "shared.cli", "capture"], input="", cwd=ROOT, env=child_env(infra),
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 1 and "the note is empty" in empty.stdout + empty.stderr
