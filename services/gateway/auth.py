"""API keys and per-key rate limits for the HTTP API.

Keys are compared as SHA-256 digests in constant time, and only a digest
prefix ever reaches Redis or the logs. The limit is a fixed one-minute window
counted in Redis; when Redis is down requests are let through (the cache is
optional by design) and the failure is logged by the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.runtime.cache import Cache
from shared.runtime.principal import SYSTEM, Principal
from shared.runtime.secrets import BearerKeys

if TYPE_CHECKING:
    from services.gateway.principals import PrincipalStore

WINDOW_S = 60


class AuthError(Exception):
    """Missing or wrong key: answered with 401."""


@dataclass
class Limited(Exception):
    """Over the limit: answered with 429 and Retry-After."""

    limit: int
    retry_after_s: int
    what: str = "requests per minute reached for this API key"

    def __str__(self) -> str:
        return f"rate limit of {self.limit} {self.what}; retry in {self.retry_after_s} s"


class KeyRing:
    """The keys the HTTP edge accepts. A key is always required, loopback included: a ring with no key refuses
    everything (the gateway adds the admin key of <data_dir>/secrets at start)."""

    REFUSALS = {"missing": "this gateway needs an API key: send the header 'Authorization: Bearer <key>'",
                "malformed": "the Authorization header must be 'Bearer <key>'", "wrong": "the API key is not valid"}

    def __init__(self, keys: list[str], people: PrincipalStore | None = None) -> None:
        self._keys = BearerKeys(keys)
        self.people = people

    @property
    def required(self) -> bool:
        return True

    def identify(self, authorization: str | None, client: str) -> str:
        """Who is calling, for the rate limit: a key digest prefix."""
        verdict, prefix = self._keys.check(authorization)
        if verdict != "ok":
            raise AuthError(self.REFUSALS[verdict])
        return "key:" + prefix

    async def resolve(self, authorization: str | None, client: str) -> tuple[str, Principal]:
        """Who is calling (for the rate limit) and as whom: the admin key and TESSERA_GATEWAY_API_KEYS act as the
        system (every project); a person's key (``tsk_…``, tessera keys create) as its user, role and projects."""
        try:
            return self.identify(authorization, client), SYSTEM
        except AuthError:
            token = (authorization or "").partition(" ")[2].strip()
            if self.people is None or not token.startswith("tsk_") or not (authorization or "").lower().startswith("bearer "):
                raise
        found = await self.people.resolve(token)  # Unavailable while PostgreSQL is away
        if found is None:
            raise AuthError(self.REFUSALS["wrong"])
        return f"user:{found.name}:{found.key_id[:8]}", found

    async def resolve_id(self, key_id: str) -> Principal:
        """The principal of a session cookie's key id: AuthError when the key was revoked or its user disabled since."""
        if self.people is None:
            raise AuthError(self.REFUSALS["wrong"])
        found = await self.people.resolve_id(key_id)
        if found is None:
            raise AuthError("this session's key was revoked or its user disabled; enter a key again")
        return found


class RateLimiter:
    def __init__(self, cache: Cache | None, per_minute: int) -> None:
        self.cache = cache
        self.per_minute = per_minute

    async def check(self, who: str) -> None:
        if not self.per_minute or self.cache is None:
            return
        window = int(time.time() // WINDOW_S)
        used = await self.cache.count(f"ratelimit:{who}:{window}", WINDOW_S + 5)
        if used is not None and used > self.per_minute:
            raise Limited(self.per_minute, max(1, int((window + 1) * WINDOW_S - time.time()) + 1))
