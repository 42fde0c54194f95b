"""The MCP server (shared.agents.mcp) over streamable HTTP at /mcp.

The gateway's edge (services/gateway/edge.py) checks the Host, the Origin, the key, failed keys and the rate limit
before a request reaches it, as for every other route; the MCP SDK's own DNS-rebinding check is kept behind it with
the same lists, as a second lock."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp

from services.gateway.edge import host_names, own_origins
from services.gateway.upstream import Mesh
from shared.agents.mcp import build_server
from shared.runtime.config import Settings


def allowed_hosts(settings: Settings) -> list[str]:
    names = sorted(n for n in host_names(settings) if n != "::1")
    return names + [f"{name}:*" for name in names]


def allowed_origins(settings: Settings) -> list[str]:
    return sorted(own_origins(settings, host_names(settings))) + list(settings.gateway.allowed_origins)


def mcp_app(settings: Settings, mesh: Mesh) -> tuple[MCPServer[Any], ASGIApp]:
    """The MCP server over the gateway's SDK client, and its streamable HTTP app (mount it at /mcp)."""
    server = build_server(lambda: mesh.client, settings)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts(settings),
                                         allowed_origins=allowed_origins(settings))
    return server, server.streamable_http_app(streamable_http_path="/", transport_security=security)
