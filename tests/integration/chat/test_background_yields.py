"""Background work yields to people across the real mesh, read from the services' counters (never from timing):
embedding waits while an answer streams, enrichment waits while people search and while an answer streams, then both
finish their work."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import psycopg
from helpers import ServiceProcess
from prometheus_client.parser import text_string_to_metric_families

from shared.client import Client, Done
from shared.runtime import secrets
from shared.runtime.config import Settings


async def sample(settings: Settings, service: str, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{settings.metrics_port(service)}/metrics")).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


async def document(settings: Settings, doc_id: str) -> tuple[bool, str]:
    async with await psycopg.AsyncConnection.connect(secrets.database_url(settings), autocommit=True) as conn:
        row = await (await conn.execute("SELECT embedded, enrich_state FROM documents WHERE id = %s", (uuid.UUID(doc_id),))).fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])


async def until(check: Any, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < end, f"{what}: not within {timeout:.0f} s"
        await asyncio.sleep(0.1)


async def test_embedding_waits_for_an_answer_and_enrichment_for_searches_and_answers(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    tag = uuid.uuid4().hex[:8]
    embed_yields = await sample(infra, "embed", "tessera_background_yields_total", worker="embed", kind="chat")
    enrich_yields = await sample(infra, "chat", "tessera_background_yields_total", worker="enrich", kind="search")
    searching = asyncio.Event()

    async def search_while_asked() -> None:
        async with Client(infra) as searcher:
            while searching.is_set():
                await searcher.search(f"lighthouse {tag}", mode="lexical", bypass_cache=True)
                await asyncio.sleep(0.2)

    async with Client(infra, timeout_s=60) as client:
        stream = await client.chat("Write a long story about a lighthouse keeper and the ships he saw.", rag=False, max_tokens=512)
        events = stream.__aiter__()
        await asyncio.wait_for(events.__anext__(), 60)  # the answer is streaming
        reply = await client.upload(f"keeper-{tag}.md", f"# Keeper {tag}\n\nThe lamp of lighthouse {tag} was lit at dusk.\n".encode(),
                                    project="enriched")  # the session enriches this project only
        doc_id = reply.file.document_id
        finished = asyncio.ensure_future(_drain(events))

        # embed stops for the answer: its pause gauge says so, and the note has no vectors yet
        async def embed_paused() -> bool:
            return await sample(infra, "embed", "tessera_background_paused", worker="embed") == 1.0 or finished.done()

        await until(embed_paused, "embed pausing for the answer", 60)
        assert not finished.done(), "the answer ended before embed paused: make it longer"
        assert (await document(infra, doc_id))[0] is False
        assert await sample(infra, "embed", "tessera_background_yields_total", worker="embed", kind="chat") > embed_yields
        # people search from now on, before the answer ends: enrichment, queued once the note is embedded, waits
        searching.set()
        searcher = asyncio.ensure_future(search_while_asked())
        done = await finished
        assert isinstance(done, Done) and done.finish_reason in ("stop", "length", "loop")  # the small model may repeat itself

    async def embedded() -> bool:
        return (await document(infra, doc_id))[0]

    await until(embedded, "embedding after the answer")  # bounded waits: it goes on while the searches continue

    async def enrich_paused() -> bool:
        return await sample(infra, "chat", "tessera_background_paused", worker="enrich") == 1.0

    await until(enrich_paused, "enrichment pausing for the searches", 60)
    assert (await document(infra, doc_id))[1] == "pending"
    assert await sample(infra, "chat", "tessera_background_yields_total", worker="enrich", kind="search") > enrich_yields
    # answers stream while enrichment waits, and the searches stop: enrichment goes on waiting, now for the answers.
    # One answer after another (the small model may end one early, or stop it as a loop): the next starts within the
    # last one's linger, so chat stays busy from the first token until the chain is stopped.
    enrich_chat = await sample(infra, "chat", "tessera_background_yields_total", worker="enrich", kind="chat")
    chatting, streaming = asyncio.Event(), asyncio.Event()
    chatting.set()

    async def answer_after_answer() -> int:
        answers = 0
        async with Client(infra, timeout_s=60) as client:
            while chatting.is_set():
                stream = await client.chat("Write a long story about a lighthouse keeper's dog.", rag=False, max_tokens=512)
                async for _ in stream:
                    streaming.set()
                answers += 1
        return answers

    chain = asyncio.ensure_future(answer_after_answer())
    await asyncio.wait_for(streaming.wait(), 60)
    searching.clear()
    await searcher

    async def enrich_waits_for_the_answers() -> bool:
        assert not chain.done(), chain  # (an error of the chain shows here)
        return await sample(infra, "chat", "tessera_background_yields_total", worker="enrich", kind="chat") > enrich_chat

    await until(enrich_waits_for_the_answers, "enrichment waiting for the answers", 60)
    assert await sample(infra, "chat", "tessera_background_paused", worker="enrich") == 1.0
    assert (await document(infra, doc_id))[1] == "pending"
    chatting.clear()
    assert await asyncio.wait_for(chain, 120) >= 1

    async def enriched() -> bool:
        return (await document(infra, doc_id))[1] in ("enriched", "unenriched")

    await until(enriched, "enrichment once the searches and the answer stopped", 180)


async def _drain(events: Any) -> Any:
    last = None
    async for event in events:
        last = event
    return last
