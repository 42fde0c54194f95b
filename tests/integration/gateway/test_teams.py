"""Teams against the session mesh: people and keys made with the command line; a writer scoped to two projects and a
reader scoped to a third. Out-of-scope reads and writes are refused with 403 and a sentence, or find nothing (an object
by id: 404, as if it were not there), and leave no trace in results, cached results, the library, documents or
conversations; each refusal is in the audit log; a revoked key and a disabled user stop working; a malformed principal
on a service's port is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import httpx2
import pytest
from helpers import ADMIN, ServiceProcess, mesh_channel, tessera
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from shared.client import Client
from shared.gen.tessera.v1 import search_pb2, search_pb2_grpc
from shared.runtime import principal
from shared.runtime.config import Settings
from shared.runtime.principal import Principal


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cli_json(infra: Settings, *args: str) -> Any:
    done = tessera(infra, *args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


async def searchable(client: Client, words: str, project: str) -> None:
    end = time.monotonic() + 120
    while not (await client.search(words, project=project, mode="vector", bypass_cache=True)).hits:
        assert time.monotonic() < end, "the note was never embedded"
        await asyncio.sleep(0.3)


def refused(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert words in r.json()["error"]["message"], r.text


async def test_two_people_three_projects(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    tag = uuid.uuid4().hex[:6]
    alpha, beta, gamma = f"alpha-{tag}", f"beta-{tag}", f"gamma-{tag}"
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    for name, role in ((alice, "writer"), (bob, "reader")):
        done = tessera(infra, "users", "add", name, "--role", role)
        assert done.returncode == 0, done.stdout + done.stderr
    a_key = cli_json(infra, "keys", "create", "--user", alice, "--projects", f"{alpha},{gamma}")
    b_key = cli_json(infra, "keys", "create", "--user", bob, "--projects", beta)
    assert a_key["key"].startswith("tsk_") and a_key["projects"] == sorted([alpha, gamma])
    listed = cli_json(infra, "keys", "list", "--user", alice)
    assert [k["id"] for k in listed] == [a_key["id"]] and "key" not in listed[0]  # only its first characters are kept
    A, B = bearer(a_key["key"]), bearer(b_key["key"])

    gw = f"http://127.0.0.1:{infra.gateway_port}"
    words_a, words_b = f"apricot drying racks {tag}", f"borage seed packets {tag}"
    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=120) as http, Client(infra) as client:
        # writes: alice into her project; the admin into bob's; refused for a project a key does not reach, or a reader
        mine = await http.post("/api/v1/notes", headers=A, json={"title": "Apricots", "body": f"The {words_a}.", "project": alpha})
        assert mine.status_code == 201, mine.text
        theirs = await http.post("/api/v1/notes", json={"title": "Borage", "body": f"The {words_b}.", "project": beta})
        assert theirs.status_code == 201, theirs.text
        doc_a, doc_b = mine.json()["document_id"], theirs.json()["document_id"]
        refused(await http.post("/api/v1/notes", headers=A, json={"title": "x", "body": f"intruder {tag}", "project": beta}),
                403, f"does not reach project '{beta}'")
        refused(await http.post("/api/v1/notes", headers=A, json={"title": "x", "body": f"intruder {tag}"}), 403, "default project")
        refused(await http.post("/api/v1/notes", headers=B, json={"title": "x", "body": f"intruder {tag}", "project": beta}), 403,
                "is a reader")
        refused(await http.post("/api/v1/ingest", headers=A, json={"path": "/tmp", "project": beta}), 403, "does not reach")
        refused(await http.delete(f"/api/v1/documents/{doc_b}", headers=B), 403, "is a reader")
        assert (await http.delete(f"/api/v1/documents/{doc_b}", headers=A)).status_code == 404  # not hers: not there
        assert (await http.patch(f"/api/v1/documents/{doc_b}", headers=A, json={"title": "mine"})).status_code in (403, 404)
        await searchable(client, words_a, alpha)
        await searchable(client, words_b, beta)

        # reads: each finds only their own; the admin's cached result for the same request does not leak to alice
        for who, query in ((ADMIN, words_b), (ADMIN, words_a)):
            r = await http.post("/api/v1/search", headers=who, json={"query": query, "top_k": 50})
            assert r.status_code == 200 and {doc_a, doc_b} & {h["document_id"] for h in r.json()["hits"]}
        for who, query, own, other in ((A, words_a, doc_a, doc_b), (A, words_b, doc_a, doc_b), (B, words_b, doc_b, doc_a)):
            for _ in range(2):  # the second is served from the result cache
                r = await http.post("/api/v1/search", headers=who, json={"query": query, "top_k": 50})
                assert r.status_code == 200, r.text
                found = {h["document_id"] for h in r.json()["hits"]}
                assert other not in found and {h["project"] for h in r.json()["hits"]} <= ({alpha, gamma} if who is A else {beta})
                if query in (words_a if who is A else words_b):
                    assert own in found
        refused(await http.post("/api/v1/search", headers=A, json={"query": words_b, "filters": {"project": beta}}), 403,
                f"does not reach project '{beta}'")
        refused(await http.get("/api/v1/documents", headers=A, params={"project": beta}), 403, "does not reach")
        assert (await http.get(f"/api/v1/documents/{doc_b}", headers=A)).status_code == 404
        assert (await http.get(f"/api/v1/documents/{doc_b}/view", headers=A)).status_code == 404
        assert (await http.get(f"/api/v1/documents/{doc_b}", headers=B)).status_code == 200
        listed_docs = (await http.get("/api/v1/documents", headers=A, params={"limit": 500})).json()["documents"]
        assert doc_a in {d["document_id"] for d in listed_docs} and doc_b not in {d["document_id"] for d in listed_docs}
        library = (await http.get("/api/v1/library", headers=A)).json()
        assert {p["name"] for p in library["projects"]} <= {alpha, gamma}
        related = await http.get("/api/v1/related", headers=A, params={"document_id": doc_b})
        assert related.status_code == 404, related.text

        # admin surfaces: a reader and a writer are refused
        refused(await http.get("/api/v1/admin/users", headers=A), 403, "needs an admin key")
        refused(await http.get("/api/v1/audit", headers=B), 403, "needs an admin key")

        # an answer for alice retrieves from her projects only, and its conversation is hers
        asked = await http.post("/api/v1/chat", headers=A, json={"question": f"What about the {words_b}?", "stream": False,
                                                                  "max_tokens": 16})
        assert asked.status_code == 200, asked.text
        assert doc_b not in {s["document_id"] for s in asked.json()["sources"]}
        conversation = asked.json()["conversation_id"]
        for who, sees in ((A, True), (B, False), (ADMIN, True)):
            ids = {c["conversation_id"] for c in (await http.get("/api/v1/conversations", headers=who)).json()["conversations"]}
            assert (conversation in ids) is sees
            assert (await http.get(f"/api/v1/conversations/{conversation}", headers=who)).status_code == (200 if sees else 404)

        # every refusal is in the audit log, with who and where
        denied = cli_json(infra, "audit", "--action", "denied", "--since", "1h", "--limit", "1000")
        mine_denied = {(e["principal"], e["method"], e["object"]) for e in denied}
        assert (alice, "POST", "/api/v1/notes") in mine_denied and (bob, "POST", "/api/v1/notes") in mine_denied
        assert (alice, "GET", "/api/v1/admin/users") in mine_denied and (bob, "GET", "/api/v1/audit") in mine_denied
        assert all(e["status"] == 403 and e["request_id"] for e in denied if e["principal"] in (alice, bob))
        assert any(e["principal"] == alice and e["object"] == "/api/v1/search" and e["project"] == beta for e in denied)  # from the body
        writes = (await http.get("/api/v1/audit", params={"action": "write", "since": "1h"})).json()["entries"]
        assert any(e["principal"] == alice and e["object"] == "/api/v1/notes" and e["status"] == 201 for e in writes)
        reads = (await http.get("/api/v1/audit", params={"action": "read", "since": "1h"})).json()["entries"]
        assert any(e["principal"] == bob and e["object"] == f"/api/v1/documents/{doc_b}" for e in reads)

        # the page exchanges a key for a session cookie that acts as its person
        started = await http.post("/api/v1/session", headers=A)
        assert started.status_code == 200 and started.json()["user"] == alice, started.text
        cookie = {"Cookie": f"tessera_session={started.cookies['tessera_session']}", "Authorization": ""}
        async with httpx.AsyncClient(base_url=gw, timeout=60) as page:
            library = (await page.get("/api/v1/library", headers={k: v for k, v in cookie.items() if v})).json()
            assert {p["name"] for p in library["projects"]} <= {alpha, gamma}

        # a revoked key and a disabled user stop working within seconds, and so does a session made with the key
        assert tessera(infra, "keys", "revoke", a_key["id"]).returncode == 0
        assert tessera(infra, "users", "disable", bob).returncode == 0
        end = time.monotonic() + 15
        while True:
            codes = [(await http.get("/api/v1/library", headers=who)).status_code for who in (A, B)]
            if codes == [401, 401] or time.monotonic() > end:
                break
            await asyncio.sleep(0.5)
        assert codes == [401, 401]
        async with httpx.AsyncClient(base_url=gw, timeout=60) as page:
            assert (await page.get("/api/v1/library", headers={"Cookie": cookie["Cookie"]})).status_code == 401
        assert (await http.get("/api/v1/library")).status_code == 200  # the admin key is untouched


async def test_a_services_port_believes_a_principal_only_well_formed(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    """The principal travels in call metadata beside a service key: a malformed one is refused, not read as the system,
    and a well-formed one is what the service's queries see."""
    async with mesh_channel(infra, infra.address("search")) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        request = search_pb2.SearchRequest(query="anything at all", top_k=5)
        for bad in ("{", json.dumps({"n": "Robert'); DROP", "r": "admin", "p": None}), json.dumps({"n": "x", "r": "root", "p": None}),
                    json.dumps({"n": "x", "r": "reader", "p": ["a,b"]})):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Search(request, metadata=((principal.HEADER, bad),))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED and "principal" in (caught.value.details() or "")
        nobody = principal.to_metadata(Principal("nobody", "reader", ()))
        assert nobody is not None
        reply = await stub.Search(request, metadata=(nobody,))
        assert list(reply.hits) == []  # a key that reaches no project finds nothing, however full the index
        everyone = await stub.Search(request)
        assert list(everyone.hits)


@contextlib.asynccontextmanager
async def mcp_session(url: str, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers=headers, timeout=120) as http, streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as session:
        await session.initialize()
        yield session


def tool_text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def test_mcp_over_http_acts_for_the_keys_person(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    """An agent with a person's key: its tools see only that person's projects, a reader's agent cannot save, and a
    writer's cannot save into a project the key does not reach."""
    tag = uuid.uuid4().hex[:6]
    mine, other, carol, dave = f"mcp-mine-{tag}", f"mcp-other-{tag}", f"carol-{tag}", f"dave-{tag}"
    gw = f"http://127.0.0.1:{infra.gateway_port}"
    words = f"quokka enclosure maintenance {tag}"
    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=120) as http, Client(infra) as client:
        for name, role in ((carol, "writer"), (dave, "reader")):
            assert (await http.post("/api/v1/admin/users", json={"name": name, "role": role})).status_code == 201
        c_key = (await http.post("/api/v1/admin/keys", json={"user": carol, "projects": [mine]})).json()["key"]
        d_key = (await http.post("/api/v1/admin/keys", json={"user": dave, "projects": [mine]})).json()["key"]
        theirs = await http.post("/api/v1/notes", json={"title": "Quokkas", "body": f"The {words}.", "project": other})
        assert theirs.status_code == 201, theirs.text
        await searchable(client, words, other)
    async with mcp_session(f"{gw}/mcp/", bearer(c_key)) as session:
        saved = await session.call_tool("capture", {"title": "Quokka notes", "body": f"Mine: {words}.", "project": mine})
        assert not saved.is_error, tool_text(saved)
        doc_mine = (saved.structured_content or {})["document_id"]
        refused_write = await session.call_tool("capture", {"title": "x", "body": f"into theirs {tag}", "project": other})
        assert refused_write.is_error and f"does not reach project '{other}'" in tool_text(refused_write)
        async with Client(infra) as client:
            await searchable(client, words, mine)
        found = await session.call_tool("search", {"query": words, "limit": 50})
        assert not found.is_error, tool_text(found)
        ids = {h["document_id"] for h in (found.structured_content or {})["hits"]}
        assert doc_mine in ids and theirs.json()["document_id"] not in ids
        named = await session.call_tool("search", {"query": words, "project": other})
        assert named.is_error and "does not reach" in tool_text(named)
        got = await session.call_tool("get", {"document": theirs.json()["document_id"]})
        assert got.is_error  # not in reach: as if it were not there
    async with mcp_session(f"{gw}/mcp/", bearer(d_key)) as session:
        found = await session.call_tool("search", {"query": words, "limit": 50})
        assert not found.is_error and theirs.json()["document_id"] not in {h["document_id"] for h in (found.structured_content or {})["hits"]}
        for tool, arguments in (("capture", {"title": "x", "body": "y", "project": mine}), ("delete", {"document": doc_mine})):
            result = await session.call_tool(tool, arguments)
            assert result.is_error and "is a reader" in tool_text(result), tool_text(result)
