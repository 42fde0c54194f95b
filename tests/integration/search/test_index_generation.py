"""Search keeps the index generation in memory: ingest, its owner, announces every change on INDEX_SUBJECT and every
search instance hears it at once (the 5 s re-read is only the backstop for a missed event), so a cached search
needs no database and a change is never answered from a stale cache."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
from helpers import ServiceProcess

from shared.client import Client
from shared.runtime import secrets
from shared.runtime.config import Settings


async def stored_generation(settings: Settings) -> int:
    async with await psycopg.AsyncConnection.connect(secrets.database_url(settings), autocommit=True) as conn:
        row = await (await conn.execute("SELECT generation FROM index_state")).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_change_reaches_searches_by_its_event(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    tag = uuid.uuid4().hex
    async with Client(infra) as client:
        before = await client.search(f"heron {tag}", project="generation")
        reply = await client.capture(f"Heron {tag[:6]}", f"A grey heron {tag} stood in the reeds at dawn.", project="generation")
        changed = await stored_generation(infra)
        assert changed > before.index_generation
        started = time.monotonic()
        while (seen := (await client.search(f"heron {tag}", project="generation")).index_generation) < changed:
            assert time.monotonic() - started < 2.0, f"search still serves generation {seen}, ingest announced {changed}"
            await asyncio.sleep(0.02)
        # Under the re-read interval: the event, not the backstop, moved it.
        assert time.monotonic() - started < 2.0
        await client.delete_document(reply.document_id)
        deleted = await stored_generation(infra)
        started = time.monotonic()
        while (await client.search(f"heron {tag}", project="generation")).index_generation < deleted:
            assert time.monotonic() - started < 2.0
            await asyncio.sleep(0.02)
        hits = await client.search(f"heron {tag}", project="generation")
        assert all(h.source.document_id != reply.document_id for h in hits.hits), "a deleted note was answered from the cache"
