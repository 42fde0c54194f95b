"""What every route needs, kept on the app (``app.state.gateway``) and reached through FastAPI dependencies."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from services.gateway.auth import KeyRing, RateLimiter
from services.gateway.upstream import Mesh
from shared.errors import PermissionDenied
from shared.runtime import principal
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
    sessions: Any = None  # services.gateway.edge.Sessions
    streams: Streams = field(default_factory=Streams)


def gateway(request: Request) -> Gateway:
    found: Gateway = request.app.state.gateway
    return found


bearer = HTTPBearer(auto_error=False, description="The admin key (<data_dir>/secrets/admin-key) or one of TESSERA_GATEWAY_API_KEYS.")


async def guard(request: Request, _: Any = Depends(bearer)) -> str:
    """The caller's identity (a key or session digest), which the edge (services/gateway/edge.py) checked, with the
    rate limit, before any route ran; this dependency only names the scheme in the OpenAPI document."""
    who = request.scope.get("state", {}).get("tessera_who")
    if not who:  # a route reached without the edge: never let it through
        from services.gateway.auth import AuthError

        raise AuthError("this gateway needs an API key: send the header 'Authorization: Bearer <key>'")
    return str(who)


AUTH = [Depends(guard)]


#: What a route tells the audit about its request (the edge reads it after the route: the project a body named).
audit_note: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("audit_note", default=None)


def in_scope(project: str, *, writes: bool = False) -> None:
    """Refuse (403) a request that names a project its key may not reach (Principal.unreachable)."""
    note = audit_note.get()
    if note is not None and project:
        note["project"] = project
    if (refusal := principal.current.get().unreachable(project, writes=writes)) is not None:
        raise PermissionDenied(refusal)
