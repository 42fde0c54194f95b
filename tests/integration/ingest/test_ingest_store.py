"""Ingest's SQL (its store module) against the real PostgreSQL, without the services."""

from __future__ import annotations

import uuid

from helpers import store_document
from psycopg_pool import AsyncConnectionPool

from services.ingest.pipeline import FileState
from services.ingest.store import IngestStore
from services.search.store import SearchStore
from shared.runtime.config import Settings


async def test_ingest_store_keeps_documents_chunks_and_jobs(pool: AsyncConnectionPool, project: str) -> None:
    store = IngestStore(pool)
    kettle = store_document(project, "kettle", ["descale the kettle with citric acid", "rinse twice"])
    job = await store.new_job(f"/stores/{project}", project, [kettle.path, f"/stores/{project}/gone.md"])
    before = await SearchStore(pool, Settings()).generation()
    generation = await store.replace_document(job, kettle)
    assert generation > before and await store.content_hash(kettle.id) == kettle.content_hash
    row = await store.document(document_id=kettle.id)
    assert row is not None and row["n"] == 2 and row["title"] == "Kettle"
    assert (await store.document(path=kettle.path) or {}).get("id") == kettle.id
    again = store_document(project, "kettle", ["only one chunk now"])  # re-ingest replaces the chunks
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


async def test_removing_missing_files_and_deleting_documents_advance_the_generation(pool: AsyncConnectionPool, project: str) -> None:
    store = IngestStore(pool)
    a, b = store_document(project, "a", ["alpha"]), store_document(project, "b", ["beta"])
    job = await store.new_job(f"/stores/{project}", project, [a.path, b.path])
    await store.replace_document(job, a)
    await store.replace_document(job, b)
    gone, generation = await store.remove_missing(job, f"/stores/{project}", project, {a.path})
    assert gone == 1 and generation > 0 and await store.document(document_id=b.id) is None
    assert await store.remove_missing(job, f"/stores/{project}", project, {a.path}) == (0, 0)
    assert await store.delete_document(a.id) > generation
    assert await store.delete_document(a.id) == 0  # nothing left to delete: no new generation
