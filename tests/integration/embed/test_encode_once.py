"""Every chunk is encoded exactly once. A capture's duplicate check embeds its chunks through the Embed RPC (embed
caches them); the embed worker then takes those vectors from the cache instead of encoding the chunks again."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from helpers import ServiceProcess
from prometheus_client.parser import text_string_to_metric_families

from shared.client import Client
from shared.runtime import secrets
from shared.runtime.config import Settings


async def embed_counter(settings: Settings, name: str, kind: str) -> float:
    """One of embed's counters by kind, e.g. tessera_embed_texts_total{kind="chunk"}."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"http://127.0.0.1:{settings.metrics_port('embed')}/metrics")).text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == name
               for s in f.samples if s.name == f"{name}_total" and s.labels.get("kind") == kind)


async def chunk_texts_encoded(settings: Settings) -> float:
    """embed's count of chunk texts its model encoded."""
    return await embed_counter(settings, "tessera_embed_texts", "chunk")


async def chunks_and_vectors(settings: Settings, doc_id: str) -> tuple[int, int, bool]:
    async with await psycopg.AsyncConnection.connect(secrets.database_url(settings), autocommit=True) as conn:
        row = await (await conn.execute(
            "SELECT (SELECT count(*) FROM chunks WHERE document_id = %(d)s), (SELECT count(*) FROM chunk_vectors WHERE document_id = %(d)s),"
            " (SELECT embedded FROM documents WHERE id = %(d)s)", {"d": uuid.UUID(doc_id)})).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), bool(row[2])


async def test_a_captured_note_is_encoded_once(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    # Several chunks: paragraphs of distinct sentences, none seen before by the model or the cache.
    tag = uuid.uuid4().hex
    body = "\n\n".join(f"## Part {i}\n\n" + " ".join(f"Observation {i}.{j} of run {tag}: the tide rose {i * j} centimetres."
                                                    for j in range(40)) for i in range(4))
    before = await chunk_texts_encoded(infra)
    tokens_before = await embed_counter(infra, "tessera_embed_tokens", "text")
    async with Client(infra) as client:
        reply = await client.capture(f"Tide log {tag[:6]}", body, project="encode-once")
    assert not reply.duplicate
    end = time.monotonic() + 120
    while not (state := await chunks_and_vectors(infra, reply.document_id))[2]:
        assert time.monotonic() < end, f"not embedded within 120 s: {state}"
        await asyncio.sleep(0.2)
    chunks, vectors, _ = state
    assert chunks > 1 and vectors == chunks
    encoded = await chunk_texts_encoded(infra) - before
    assert encoded == chunks, f"{chunks} chunks, {encoded} encodings: the worker encoded again what the duplicate check had"
    # Each chunk is a few hundred word pieces; the token counter saw at least one per word of the note.
    tokens = await embed_counter(infra, "tessera_embed_tokens", "text") - tokens_before
    assert tokens >= len(body.split()), f"{tokens} tokens counted for {len(body.split())} words"


async def test_a_text_repeated_through_a_document_is_encoded_once_and_in_the_graph_once(infra: Settings, mesh: dict[str, ServiceProcess],
                                                                                        tmp_path: Path) -> None:
    """A log of one line repeated: its identical chunks are encoded once, all keep a vector, and one of them is in the
    HNSW graph (a group of identical vectors there is a sink no walk leaves: bench/twins.py); a note stored after it is
    found by meaning."""
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path / f"twins-{tag}"
    folder.mkdir()
    (folder / "gateway.txt").write_text(f"WARN {tag} upstream timed out while reading the response header from the pool.\n" * 1500)
    (folder / "lamp.md").write_text(f"# Lighthouse lamp {tag}\n\nThe keeper trims the wick at dusk and polishes the lens every Sunday.\n")
    before = await chunk_texts_encoded(infra)
    async with Client(infra) as client:
        job = await client.ingest_path(folder, project=f"twins-{tag}")
        async for state in client.watch_job(job.job_id, include_files=False):
            if state.done and state.counts.chunks and state.counts.chunks_embedded >= state.counts.chunks:
                break
        async with await psycopg.AsyncConnection.connect(secrets.database_url(infra), autocommit=True) as conn:
            rows = await (await conn.execute(
                "SELECT d.path, count(*), count(*) FILTER (WHERE v.indexed), count(DISTINCT (c.context, c.text)),"
                " count(DISTINCT v.digest) FROM documents d JOIN chunks c ON c.document_id = d.id JOIN chunk_vectors v ON v.chunk_id = c.id"
                " WHERE d.project = %s GROUP BY d.path", (f"twins-{tag}",))).fetchall()
            index = await (await conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunk_vectors_embedding'")).fetchone()
        counts = {Path(r[0]).name: tuple(int(x) for x in r[1:]) for r in rows}
        chunks, indexed, texts, digests = counts["gateway.txt"]
        assert chunks > 50 and texts <= 3, counts  # the log's chunks are a few texts, most of them one
        assert indexed == texts == digests, counts  # one vector of each text in the graph, every chunk with its vector
        assert counts["lamp.md"][:2] == (1, 1), counts
        encoded = await chunk_texts_encoded(infra) - before
        # every distinct text once (a chunk another test left queued may be encoded meanwhile: a few more, never ~chunks)
        assert texts + 1 <= encoded <= texts + 4, f"{encoded} encodings for {texts} distinct texts and the note ({chunks} chunks)"
        assert index is not None and "WHERE indexed" in index[0]
        reply = await client.search("who polishes the lens of the lighthouse lamp", project=f"twins-{tag}", mode="vector", bypass_cache=True)
        assert reply.hits and Path(reply.hits[0].source.path).name == "lamp.md"
