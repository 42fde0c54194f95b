"""The MCP server (shared.agents.mcp) over streamable HTTP at /mcp, behind the gateway's own checks:
the same API keys as the rest of the gateway, the Host header (DNS rebinding), and the Origin header
(only loopback origins and TESSERA_GATEWAY_ALLOWED_ORIGINS)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway import convert
from services.gateway.auth import AuthError, KeyRing
from services.gateway.bodies import discard_body
from services.gateway.upstream import Mesh
from shared.agents.mcp import build_server
from shared.runtime.config import Settings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts(settings: Settings) -> list[str]:
    hosts = [f"{name}:*" for name in LOOPBACK_NAMES] + list(LOOPBACK_NAMES)
    if settings.gateway.api_keys:  # reachable beyond loopback only with keys
        for name in {settings.core.host, settings.public_host()} - {"0.0.0.0", "::"}:
            hosts += [name, f"{name}:*"]
    return hosts


def allowed_origins(settings: Settings) -> list[str]:
    return [f"{scheme}://{name}:*" for scheme in ("http", "https") for name in LOOPBACK_NAMES] + \
        [f"{scheme}://{name}" for scheme in ("http", "https") for name in LOOPBACK_NAMES] + list(settings.gateway.allowed_origins)


def _host_ok(host: str, allowed: list[str]) -> bool:
    if host in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return any(a.endswith(":*") and a[:-2] == name for a in allowed)


def _origin_ok(origin: str, allowed: list[str]) -> bool:
    if origin in allowed:
        return True
    return any(a.endswith(":*") and origin.startswith(a[:-2] + ":") for a in allowed)


class McpGuard:
    """The gateway's answers (its one JSON error shape) before a request reaches the MCP app."""

    def __init__(self, app: ASGIApp, settings: Settings, keys: KeyRing) -> None:
        self.app, self.keys = app, keys
        self.hosts, self.origins = allowed_hosts(settings), allowed_origins(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode(errors="replace") for k, v in scope.get("headers", [])}
        origin, host = headers.get("origin", ""), headers.get("host", "")
        client = (scope.get("client") or ("unknown", 0))[0]
        problem: tuple[int, str, str, dict[str, str]] | None = None
        if host and not _host_ok(host, self.hosts):
            problem = (421, f"mcp: the Host {host!r} is not one this gateway answers to", "invalid_host", {})
        elif origin and not _origin_ok(origin, self.origins):
            problem = (403, f"mcp: requests from the origin {origin!r} are not allowed; add it to TESSERA_GATEWAY_ALLOWED_ORIGINS",
                       "invalid_origin", {})
        else:
            try:
                self.keys.identify(headers.get("authorization"), client)
            except AuthError as exc:
                problem = (401, str(exc), "invalid_api_key", {"WWW-Authenticate": "Bearer"})
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, message, code, extra = problem
        await discard_body(receive)  # or Hypercorn may close the connection under the client's next request
        await JSONResponse(convert.error_body(status, message, code), status_code=status, headers=extra)(scope, receive, send)


def mcp_app(settings: Settings, mesh: Mesh, keys: KeyRing) -> tuple[MCPServer[Any], ASGIApp]:
    """The MCP server over the gateway's SDK client, and its guarded streamable HTTP app (mount it at /mcp)."""
    server = build_server(lambda: mesh.client, settings)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts(settings),
                                         allowed_origins=allowed_origins(settings))
    app = server.streamable_http_app(streamable_http_path="/", transport_security=security)
    return server, McpGuard(app, settings, keys)
