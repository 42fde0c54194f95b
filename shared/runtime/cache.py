"""Redis as a cache only: a dead or slow Redis degrades a request, never fails it.

Every operation has a short socket timeout; a failure marks the cache down for
``redis_retry_s`` during which calls return at once (a miss, a no-op), then the
next call tries Redis again. Nothing stored here is needed for correctness.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

from shared.runtime import secrets
from shared.runtime.config import Settings
from shared.runtime.metrics import CACHE

log = logging.getLogger("tessera.cache")


class Cache:
    """A namespaced byte cache over Redis that never raises."""

    def __init__(self, settings: Settings, namespace: str) -> None:
        timeout = settings.infra.redis_timeout_ms / 1000
        self._redis = redis.Redis.from_url(secrets.redis_url(settings), socket_timeout=timeout, socket_connect_timeout=timeout,
                                           retry_on_timeout=False)
        self._prefix = f"tessera:{namespace}:"
        self._retry_s = settings.infra.redis_retry_s
        self._down_until = 0.0
        self.last_error = ""

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        if self.available:
            log.warning("cache unavailable, continuing without it", extra={"error": str(exc)})
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._down_until = time.monotonic() + self._retry_s

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        if not self.available:
            CACHE.labels("error").inc(len(keys))
            return [None] * len(keys)
        try:
            values = await self._redis.mget([self._prefix + k for k in keys])
        except (RedisError, OSError) as exc:
            self._failed(exc)
            CACHE.labels("error").inc(len(keys))
            return [None] * len(keys)
        hits = sum(v is not None for v in values)
        CACHE.labels("hit").inc(hits)
        CACHE.labels("miss").inc(len(keys) - hits)
        return [v.encode() if isinstance(v, str) else v for v in values]

    async def get(self, key: str) -> bytes | None:
        return (await self.get_many([key]))[0]

    async def set_many(self, items: dict[str, bytes], ttl_s: int) -> None:
        if not items or not self.available:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self._prefix + key, value, ex=ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def set(self, key: str, value: bytes, ttl_s: int) -> None:
        await self.set_many({key: value}, ttl_s)

    async def count(self, key: str, ttl_s: int) -> int | None:
        """Add one to a counter that lives ``ttl_s`` from its first use; None while the cache is down."""
        if not self.available:
            return None
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(self._prefix + key)
                pipe.expire(self._prefix + key, ttl_s, nx=True)
                value, _ = await pipe.execute()
            return int(value)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None

    async def ping(self) -> str:
        """Raises when Redis is unreachable (used by readiness, where it marks DEGRADED)."""
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            self._failed(exc)
            raise
        self._down_until = 0.0
        return "redis ok"

    async def close(self) -> None:
        await self._redis.aclose()
