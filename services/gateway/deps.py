"""What every route needs, kept on the app (``app.state.gateway``) and reached through FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from services.gateway.auth import KeyRing, RateLimiter
from services.gateway.upstream import Mesh
from shared.runtime.config import Settings


@dataclass
class Streams:
    """Open event streams, for /api/v1/status and the backpressure tests."""

    open: int = 0


@dataclass
class Gateway:
    settings: Settings
    mesh: Mesh
    keys: KeyRing
    limiter: RateLimiter
    ready: Callable[[], bool]
    mesh_status: Callable[[], Awaitable[dict[str, Any]]]
    streams: Streams = field(default_factory=Streams)


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


bearer = HTTPBearer(auto_error=False, description="An API key from TESSERA_GATEWAY_API_KEYS (only when keys are configured).")


async def guard(request: Request, _: Any = Depends(bearer)) -> str:
    """The caller's identity (a key digest or its address), after the key check and the rate limit."""
    g = gateway(request)
    client = request.client.host if request.client else "unknown"
    who = g.keys.identify(request.headers.get("authorization"), client)
    await g.limiter.check(who)
    return who


AUTH = [Depends(guard)]
