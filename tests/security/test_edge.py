"""The HTTP edge against the real mesh: what a web page, a rebinding DNS name or a local process without the key gets.

Each test names the hole it closes (issue 28). Every request here is refused by services/gateway/edge.py before any
route runs; without that guard each of them reached the API (checked: see the closing note of the issue).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import ADMIN, Launcher, ServiceProcess, service_ports, wait_serving

from shared.runtime import secrets
from shared.runtime.config import Settings, load_settings, settings_env

ACCEPT_MCP = {"Accept": "application/json, text/event-stream"}
HELLO = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def gw(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path) -> str:
    return f"http://127.0.0.1:{infra.gateway_port}"


@pytest.fixture(scope="module")
def strict(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher) -> Iterator[Settings]:
    """A gateway that locks an address out after 5 bad keys (its own Redis database, so other tests' counts stay apart)."""
    ports = service_ports()
    redis = infra.infra.redis_url.rsplit("/", 1)[0] + "/3"
    settings = load_settings({**settings_env(infra), "TESSERA_GATEWAY_PORT": ports["TESSERA_GATEWAY_PORT"],
                              "TESSERA_GATEWAY_GRPC_PORT": ports["TESSERA_GATEWAY_GRPC_PORT"],
                              "TESSERA_GATEWAY_TLS_PORT": ports["TESSERA_GATEWAY_TLS_PORT"], "TESSERA_REDIS_URL": redis,
                              "TESSERA_GATEWAY_AUTH_FAILURES": "5"})
    proc = launcher.start("gateway", settings)
    wait_serving(settings, [proc])
    yield settings
    proc.stop()


#: Every surface that reads or writes notes, with a request that would succeed with the key.
SURFACES = [
    ("GET", "/api/v1/documents", None),  # REST: lists every note
    ("POST", "/api/v1/search", {"query": "kettle"}),
    ("POST", "/api/v1/chat", {"question": "How do I descale a kettle?", "max_tokens": 4}),  # SSE
    ("GET", "/v1/models", None),  # OpenAI-compatible
    ("POST", "/v1/embeddings", {"model": "all-MiniLM-L6-v2", "input": "x"}),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
]


@pytest.mark.parametrize(("method", "path", "body"), SURFACES)
async def test_no_key_gets_nothing_even_on_loopback(gw: str, method: str, path: str, body: object) -> None:
    """Hole: with no key configured, loopback was open to any local user or process; /metrics and /openapi.json too."""
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.request(method, gw + path, json=body)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert "API key" in r.json()["error"]["message"]
        ok = await http.request(method, gw + path, json=body, headers=ADMIN)
        assert ok.status_code in (200, 201), (path, ok.status_code, ok.text[:300])


async def test_mcp_needs_the_key(gw: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{gw}/mcp/", json=HELLO, headers=ACCEPT_MCP)
    assert r.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), [SURFACES[0], SURFACES[2], SURFACES[3]])
async def test_a_rebinding_host_name_is_refused(gw: str, method: str, path: str, body: object) -> None:
    """Hole: `curl -H "Host: attacker.example" http://127.0.0.1:8470/api/v1/documents` listed every note (DNS rebinding:
    a page of attacker.example whose name now resolves to 127.0.0.1 is same-origin with itself, and sends its Host)."""
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.request(method, gw + path, json=body, headers={**ADMIN, "Host": "attacker.example"})
    assert r.status_code == 403 and "TESSERA_GATEWAY_ALLOWED_HOSTS" in r.json()["error"]["message"], r.text


@pytest.mark.parametrize("origin", ["http://attacker.example", "http://127.0.0.1:9", "http://localhost:1", "null"])
async def test_another_origin_cannot_write_read_or_stream(gw: str, infra: Settings, origin: str) -> None:
    """Hole: POST /api/v1/ingest with `Origin: http://attacker.example` was accepted, and /mcp took any loopback port's
    origin (a page served by another local program). Only the gateway's own origins pass."""
    folder = infra.path("imports", "origin-probe")
    folder.mkdir(parents=True, exist_ok=True)
    headers = {**ADMIN, "Origin": origin}
    async with httpx.AsyncClient(timeout=30) as http:
        for method, path, body in [("POST", "/api/v1/ingest", {"path": str(folder)}), ("GET", "/api/v1/documents", None),
                                   ("POST", "/api/v1/chat", {"question": "hello", "max_tokens": 4}), ("POST", "/mcp/", HELLO)]:
            r = await http.request(method, gw + path, json=body, headers={**headers, **ACCEPT_MCP})
            assert r.status_code == 403 and "TESSERA_GATEWAY_ALLOWED_ORIGINS" in r.json()["error"]["message"], (path, r.text)
        own = await http.post(f"{gw}/api/v1/search", json={"query": "kettle"},
                              headers={**ADMIN, "Origin": f"http://127.0.0.1:{infra.gateway_port}"})
        assert own.status_code == 200  # the page itself, from its own origin


async def test_failed_keys_lock_the_address_out_on_every_surface(strict: Settings) -> None:
    """Hole: /mcp counted no failed keys and had no rate limit. Five bad keys on any surface, then every surface says 429,
    the good key included, until the minute ends."""
    url = f"http://127.0.0.1:{strict.gateway_port}"
    key = secrets.ensure(strict, secrets.ADMIN_KEY)
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"})).status_code == 200
        codes = []
        for i in range(5):  # MCP and REST alike count
            path, body = (("/mcp/", HELLO) if i % 2 else ("/api/v1/search", {"query": "x"}))
            r = await http.post(url + path, json=body, headers={**ACCEPT_MCP, "Authorization": f"Bearer guess-{i}"})
            codes.append(r.status_code)
        assert codes == [401] * 5
        for path, body in (("/mcp/", HELLO), ("/v1/models", None)):
            r = await http.request("POST" if body else "GET", url + path, json=body, headers={**ACCEPT_MCP, "Authorization": f"Bearer {key}"})
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "failed keys" in r.json()["error"]["message"]
        assert (await http.get(f"{url}/healthz")).status_code == 200  # health stays open


async def test_the_login_link_works_once_and_its_cookie_only_from_the_page(gw: str, infra: Settings) -> None:
    """The page is opened through a one-time link (`make run` prints it): a second opening is refused, and the session
    cookie it gives is worth nothing to a request from another origin."""
    link = secrets.login_link(infra).replace(f"http://127.0.0.1:{infra.gateway_port}", gw)
    async with httpx.AsyncClient(timeout=30) as http:
        first = await http.get(link)
        assert first.status_code == 303 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert (await http.get(link)).status_code == 403  # used
        assert (await http.get(f"{gw}/api/v1/documents")).status_code == 200  # the client keeps the cookie: signed in
        evil = await http.get(f"{gw}/api/v1/documents", headers={"Origin": "http://attacker.example"})
        assert evil.status_code == 403
    async with httpx.AsyncClient(timeout=30) as http:
        forged = await http.get(f"{gw}/api/v1/documents", cookies={"tessera_session": "99999999999.0.deadbeef"})
        assert forged.status_code == 401


async def test_the_admin_key_file_is_private_and_never_printed(infra: Settings, gw: str) -> None:
    path = secrets.folder(infra) / secrets.ADMIN_KEY
    assert path.stat().st_mode & 0o777 == 0o600 and secrets.folder(infra).stat().st_mode & 0o777 == 0o700
    key = path.read_text().strip()
    assert len(key) >= 40
    async with httpx.AsyncClient(timeout=30) as http:
        status = await http.get(f"{gw}/api/v1/status", headers=ADMIN)
    assert key not in status.text and key not in json.dumps(dict(status.headers))


async def test_another_origin_or_no_key_cannot_rename_or_delete_a_conversation(gw: str) -> None:
    """Hole (the new surface of issue 41): PATCH and DELETE /api/v1/conversations/{id} rewrite or erase a person's
    history. Without the edge's key, Origin and Host checks, a page on another site (or a rebinding name) could send
    them with the person's browser; each is refused, and the conversation is unchanged."""
    async with httpx.AsyncClient(timeout=120) as http:
        r = await http.post(f"{gw}/api/v1/chat", json={"question": "Say hello.", "rag": False, "max_tokens": 2, "stream": False},
                            headers=ADMIN)
        assert r.status_code == 200, r.text
        url = f"{gw}/api/v1/conversations/{r.json()['conversation_id']}"
        before = (await http.get(url, headers=ADMIN)).json()
        for method, body in (("PATCH", {"title": "renamed by a stranger"}), ("DELETE", None)):
            assert (await http.request(method, url, json=body)).status_code == 401
            stranger = await http.request(method, url, json=body, headers={**ADMIN, "Origin": "http://attacker.example"})
            assert stranger.status_code == 403, stranger.text
            rebound = await http.request(method, url, json=body, headers={**ADMIN, "Host": "attacker.example"})
            assert rebound.status_code == 403, rebound.text
        after = await http.get(url, headers=ADMIN)
    assert after.status_code == 200 and after.json()["title"] == before["title"] and len(after.json()["messages"]) == 2
