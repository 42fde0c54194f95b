"""Each service's SQL (its store module) against the real PostgreSQL with pgvector, without the services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool

from services.chat.store import ChatStore, NewTurn
from services.embed.store import EmbedStore
from services.ingest.chunk import Chunk
from services.ingest.store import FileState, IngestStore, NewDocument
from services.search.store import SearchStore
from shared.contracts import FINISH_FAILED, FINISH_GENERATING
from shared.gen.tessera.v1 import common_pb2
from shared.runtime import analyzer, db
from shared.runtime.config import Settings


@pytest.fixture
async def pool(infra: Settings) -> AsyncIterator[AsyncConnectionPool]:
    p = await db.open_pool(infra)
    try:
        yield p
    finally:
        await p.close()


def chunk(i: int, text: str) -> Chunk:
    return Chunk(ord=i, text=text, char_start=i * 100, char_end=i * 100 + len(text), line_start=i * 3 + 1, line_end=i * 3 + 2,
                 heading_path=("Guide", f"Part {i}"), tokens=len(text.split()))


def document(project: str, name: str, texts: list[str]) -> NewDocument:
    path = f"/stores/{project}/{name}.md"
    return NewDocument(uuid.uuid5(uuid.NAMESPACE_URL, path), project, path, name.title(), "note", ["t"], "text/markdown",
                       f"hash-{name}-{len(texts)}", [], None, f"/stores/{project}", 10, [chunk(i, t) for i, t in enumerate(texts)])


async def test_ingest_store_keeps_documents_chunks_and_jobs(pool: AsyncConnectionPool) -> None:
    store = IngestStore(pool)
    project = f"st-{uuid.uuid4().hex[:8]}"
    kettle = document(project, "kettle", ["descale the kettle with citric acid", "rinse twice"])
    job = await store.new_job(f"/stores/{project}", project, [kettle.path, f"/stores/{project}/gone.md"])
    before = await SearchStore(pool, Settings()).generation()
    generation = await store.replace_document(job, kettle)
    assert generation > before and await store.content_hash(kettle.id) == kettle.content_hash
    row = await store.document(document_id=kettle.id)
    assert row is not None and row["n"] == 2 and row["title"] == "Kettle"
    assert (await store.document(path=kettle.path) or {}).get("id") == kettle.id
    again = document(project, "kettle", ["only one chunk now"])  # re-ingest replaces the chunks
    await store.replace_document(job, again)
    assert (await store.document(document_id=kettle.id) or {})["n"] == 1
    await store.file_state(job, FileState(f"/stores/{project}/gone.md", "failed", "binary file"))
    await store.finish_job(job)
    found = await store.job(job)
    assert found is not None
    row, files = found
    assert row["finished_at"] is not None
    assert [(f["path"].rsplit("/", 1)[1], f["state"], f["chunks"]) for f in files] == [("gone.md", "failed", 0), ("kettle.md", "chunked", 1)]
    assert await store.job(uuid.uuid4()) is None


async def test_removing_missing_files_and_deleting_documents_advance_the_generation(pool: AsyncConnectionPool) -> None:
    store = IngestStore(pool)
    project = f"st-{uuid.uuid4().hex[:8]}"
    a, b = document(project, "a", ["alpha"]), document(project, "b", ["beta"])
    job = await store.new_job(f"/stores/{project}", project, [a.path, b.path])
    await store.replace_document(job, a)
    await store.replace_document(job, b)
    gone, generation = await store.remove_missing(job, f"/stores/{project}", project, {a.path})
    assert gone == 1 and generation > 0 and await store.document(document_id=b.id) is None
    assert await store.remove_missing(job, f"/stores/{project}", project, {a.path}) == (0, 0)
    assert await store.delete_document(a.id) > generation
    assert await store.delete_document(a.id) == 0  # nothing left to delete: no new generation


async def test_embed_store_writes_vectors_once_marks_documents_and_links_them(pool: AsyncConnectionPool) -> None:
    ingest, embed = IngestStore(pool), EmbedStore(pool)
    project = f"st-{uuid.uuid4().hex[:8]}"
    docs = [document(project, "one", ["same words here"]), document(project, "two", ["same words here"])]
    job = await ingest.new_job("", project, [d.path for d in docs])
    for d in docs:
        await ingest.replace_document(job, d)
    ids = [d.id for d in docs]
    pending = await embed.pending(ids)
    assert [text for _, _, text, _ in pending] == ["same words here"] * 2 and {doc for *_, doc in pending} == set(ids)
    assert {context for _, context, _, _ in pending} == {"One / Guide / Part 0", "Two / Guide / Part 0"}  # title, then headings
    vec = np.ones(384, dtype=np.float32) / np.sqrt(384)
    await embed.write_vectors([(cid, vec) for cid, *_ in pending], "test-model")
    await embed.write_vectors([(pending[0][0], -vec)], "other-model")  # a redelivered batch changes nothing
    assert await embed.pending(ids) == []
    assert (await embed.finish(ids, changed=True, related_threshold=0.9))[0] > 0
    found = await ingest.job(job)
    assert found is not None and {f["state"] for f in found[1]} == {"embedded"}
    related = await SearchStore(pool, Settings()).related(document_id=docs[0].id, limit=5)
    assert related is not None and [r[2] for r in related] == [docs[1].path] and related[0][3] == pytest.approx(1.0)
    assert (await embed.finish(ids, changed=False, related_threshold=0.9))[0] == 0  # already embedded: no new generation
    assert await embed.other_model("no-such-model") != "", "vectors of test-model are stored"


async def test_search_store_lexical_and_vector_candidates_respect_filters(pool: AsyncConnectionPool) -> None:
    ingest, embed = IngestStore(pool), EmbedStore(pool)
    project = f"st-{uuid.uuid4().hex[:8]}"
    docs = [document(project, "kettle", ["descale the kettle with citric acid"]), document(project, "bike", ["oil the bike chain"])]
    job = await ingest.new_job("", project, [d.path for d in docs])
    for d in docs:
        await ingest.replace_document(job, d)
    rows = await embed.pending([d.id for d in docs])
    basis = np.eye(384, dtype=np.float32)
    await embed.write_vectors([(cid, basis[1] if "bike" in text else basis[0]) for cid, _, text, _ in rows], "test-model")
    store = SearchStore(pool, Settings())
    terms = analyzer.query_terms("Descaling kettles!")
    assert terms == {"descal": 1, "kettl": 1}
    hits = await store.lexical(terms, common_pb2.Filters(project=project), 10, explain=True)
    assert [h.document_id for h in hits] == [str(docs[0].id)] and hits[0].score > 0
    assert [t for t, _ in hits[0].terms] == ["descal", "kettl"] and sum(w for _, w in hits[0].terms) == pytest.approx(hits[0].score)
    ranked = await store.vector(basis[1], common_pb2.Filters(project=project), 10)
    assert [c.document_id for c in ranked] == [str(docs[1].id), str(docs[0].id)] and ranked[0].score == pytest.approx(1.0)
    assert await store.vector(basis[1], common_pb2.Filters(project=project, tags=["absent"]), 10) == []
    details = await store.details([ranked[0].chunk_id])
    assert details[ranked[0].chunk_id]["title"] == "Bike" and details[ranked[0].chunk_id]["line_start"] == 1
    assert await store.related(path="/stores/nowhere.md") is None


async def test_chat_store_keeps_turns_and_sweeps_answers_of_dead_processes(pool: AsyncConnectionPool) -> None:
    alive, dead = ChatStore(pool, "tessera-chat-alive"), ChatStore(pool, f"tessera-chat-gone-{uuid.uuid4().hex[:6]}")
    conversation = str(uuid.uuid4())
    assert await alive.history(conversation) is None
    await alive.store_question(NewTurn(conversation, True, "Kettle?", "How do I descale a kettle?", 40), "00000000-0000-4000-8000-00000000a001")
    await alive.store_answer(conversation, "00000000-0000-4000-8000-00000000a001", "Citric acid [1].", [{"number": 1}], "stop", 5)
    assert await alive.history(conversation) == [("user", "How do I descale a kettle?"), ("assistant", "Citric acid [1].")]
    answer = str(uuid.uuid4())
    await dead.store_question(NewTurn(conversation, False, "", "And the filter?", 30), answer)
    async with pool.connection() as conn:
        await conn.execute("UPDATE messages SET created_at = now() - interval '10 seconds' WHERE id = %s", (answer,))
    assert await alive.sweep_failed() >= 1
    found = await alive.conversation(conversation)
    assert found is not None
    conv, rows = found
    assert conv["title"] == "Kettle?" and next(r for r in rows if r["id"] == answer)["finish_reason"] == FINISH_FAILED
    assert FINISH_GENERATING not in [r["finish_reason"] for r in rows]
    assert next(r for r in rows if r["content"] == "Citric acid [1].")["citations"] == [{"number": 1}]
    assert conversation in [c["id"] for c in await alive.conversations(500)]
    assert await alive.conversation(str(uuid.uuid4())) is None
