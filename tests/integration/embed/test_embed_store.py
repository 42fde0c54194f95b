"""Embed's SQL (its store module) against the real PostgreSQL with pgvector, without the services: vectors written
once per (chunk, model), documents found complete and linked; ingest, the owner of documents, marks them."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import store_document
from psycopg_pool import AsyncConnectionPool

from services.embed.store import EmbedStore
from services.ingest.store import IngestStore
from services.search.store import SearchStore
from shared.runtime.config import Settings


async def test_embed_store_writes_vectors_once_finds_complete_documents_and_links_them(pool: AsyncConnectionPool, project: str) -> None:
    ingest, embed = IngestStore(pool), EmbedStore(pool, "test-model")
    docs = [store_document(project, "one", ["same words here"]), store_document(project, "two", ["same words here"])]
    job = await ingest.new_job("", project, [d.path for d in docs])
    for d in docs:
        await ingest.replace_document(job, d)
    ids = [d.id for d in docs]
    pending = await embed.pending(ids)
    assert [text for _, _, text, _ in pending] == ["same words here"] * 2 and {doc for *_, doc in pending} == set(ids)
    assert {context for _, context, _, _ in pending} == {"One / Guide / Part 0", "Two / Guide / Part 0"}  # title, then headings
    vec = np.ones(384, dtype=np.float32) / np.sqrt(384)
    await embed.write_vectors([(cid, vec) for cid, *_ in pending])
    await embed.write_vectors([(pending[0][0], -vec)])  # a redelivered batch changes nothing
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT embedding FROM chunk_vectors WHERE chunk_id = %s AND model_id = 'test-model'",
                                        (pending[0][0],))).fetchone()
    assert row is not None and float(row[0].to_numpy()[0]) > 0
    assert await embed.pending(ids) == [] and await EmbedStore(pool, "other-model").pending(ids) != []  # keyed by (chunk, model)
    assert sorted(await embed.finish(ids, related_threshold=0.9)) == sorted(ids)
    generation, enrich = await ingest.mark_embedded(ids, advance=True)
    assert generation > 0 and sorted(enrich) == sorted(ids)  # enrichment is pending by default
    await ingest.files_embedded(ids)
    found = await ingest.job(job)
    assert found is not None and {f["state"] for f in found[1]} == {"embedded"}
    assert {f["embedded_chunks"] for f in found[1]} == {1}
    related = await SearchStore(pool, Settings()).related(document_id=docs[0].id, limit=5)
    assert related is not None and [r[2] for r in related] == [docs[1].path] and related[0][3] == pytest.approx(1.0)
    assert await embed.finish(ids, related_threshold=0.9) == []  # already embedded: nothing new to tell
    assert await ingest.mark_embedded(ids, advance=False) == (0, [])  # a repeated event changes nothing
    assert await EmbedStore(pool, "no-such-model").other_model() != "", "vectors of test-model are stored"


async def test_the_sweep_finds_documents_whose_queue_message_was_lost(pool: AsyncConnectionPool, project: str) -> None:
    ingest, embed = IngestStore(pool), EmbedStore(pool, "test-model")
    doc = store_document(project, "lost", ["a chunk nobody embedded"])
    await ingest.replace_document(await ingest.new_job("", project, [doc.path]), doc)
    assert doc.id not in await embed.requeue_stale(3600)  # too young
    async with pool.connection() as conn:
        await conn.execute("UPDATE documents SET updated_at = now() - interval '1 hour' WHERE id = %s", (doc.id,))
    assert doc.id in await embed.requeue_stale(60)
    assert doc.id not in await embed.requeue_stale(60)  # its clock restarted
    await embed.write_vectors([(cid, np.ones(384, dtype=np.float32)) for cid, *_ in await embed.pending([doc.id])])
    assert doc.id in await ingest.embedded_unmarked(0)  # every vector written, the event lost: ingest finds it
