"""The cache against a real Valkey, and without one."""

from __future__ import annotations

from shared.ops.infra import free_port
from shared.runtime.cache import Cache
from shared.runtime.config import Settings


async def test_round_trip(infra: Settings) -> None:
    cache = Cache(infra, "test")
    try:
        await cache.set_many({"a": b"1", "b": b"2"}, ttl_s=60)
        assert await cache.get_many(["a", "missing", "b"]) == [b"1", None, b"2"]
        assert (await cache.ping()) == "redis ok"
    finally:
        await cache.close()


async def test_dead_cache_degrades_and_never_raises(infra: Settings) -> None:
    cache = Cache(infra.with_overrides(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_retry_s=30.0), "test")
    try:
        assert await cache.get("a") is None
        await cache.set("a", b"1", ttl_s=60)
        assert await cache.get_many(["a", "b"]) == [None, None]
        assert not cache.available and "Connection" in cache.last_error
    finally:
        await cache.close()
