"""Search's SQL (its store module) against the real PostgreSQL with pgvector, without the services."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from helpers import store_document
from psycopg_pool import AsyncConnectionPool

from services.embed.store import EmbedStore
from services.ingest.store import IngestStore
from services.search.store import SearchStore
from shared.gen.tessera.v1 import common_pb2
from shared.runtime import analyzer, db
from shared.runtime.config import Settings


@pytest.fixture(params=["pool", "reads"])
async def reads(request: pytest.FixtureRequest, infra: Settings) -> AsyncIterator[AsyncConnectionPool | None]:
    """Each store test twice: its statements on the service's pool, and on a read pool (autocommit), as search runs them."""
    if request.param == "pool":
        yield None
        return
    p = await db.open_read_pool(infra)
    try:
        yield p
    finally:
        await p.close()


async def test_search_store_lexical_and_vector_candidates_respect_filters(pool: AsyncConnectionPool, project: str,
                                                                          reads: AsyncConnectionPool | None) -> None:
    ingest, embed = IngestStore(pool), EmbedStore(pool, "test-model")
    docs = [store_document(project, "kettle", ["descale the kettle with citric acid"]), store_document(project, "bike", ["oil the bike chain"])]
    job = await ingest.new_job("", project, [d.path for d in docs])
    for d in docs:
        await ingest.replace_document(job, d)
    rows = await embed.pending([d.id for d in docs])
    basis = np.eye(384, dtype=np.float32)
    await embed.write_vectors([(cid, basis[1] if "bike" in text else basis[0]) for cid, _, text, _ in rows])
    store = SearchStore(pool, Settings(), reads)
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


async def test_feedback_reranks_the_walked_chunks_by_their_cosine_to_the_moved_query(pool: AsyncConnectionPool, project: str,
                                                                                     reads: AsyncConnectionPool | None) -> None:
    """The walk brings each chunk's stored vector; feedback gives each walked chunk cos(c, q + w·mean(the feedback
    documents' chunk vectors)) as computed here from the vectors written, and its score stays its cosine to the query."""
    ingest, embed = IngestStore(pool), EmbedStore(pool, "test-model")
    docs = [store_document(project, f"note{i}", [f"text number {i}"]) for i in range(4)]
    job = await ingest.new_job("", project, [d.path for d in docs])
    for d in docs:
        await ingest.replace_document(job, d)
    rows = await embed.pending([d.id for d in docs])
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(len(rows), 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    await embed.write_vectors([(cid, vecs[i]) for i, (cid, _, _, _) in enumerate(rows)])
    by_chunk = {str(r[0]): vecs[i] for i, r in enumerate(rows)}
    store = SearchStore(pool, Settings(), reads)
    q = vecs[0] + 0.5 * vecs[1]
    q /= np.linalg.norm(q)
    walked = await store.walk(q, common_pb2.Filters(project=project), 10)
    assert len(walked.found) == 4 and walked.vectors.shape == (4, 384)
    for c, v in zip(walked.found, walked.vectors, strict=True):
        np.testing.assert_allclose(v, by_chunk[c.chunk_id], atol=1e-6)
    assert [c.chunk_id for c in walked.found] == [c.chunk_id for c in await store.vector(q, common_pb2.Filters(project=project), 10)]
    top = [str(docs[2].id), str(docs[3].id)]
    out = await store.feedback(q, top, 0.6, walked)
    target = q + 0.6 * np.mean([by_chunk[c.chunk_id] for c in walked.found if c.document_id in top], axis=0)
    want = {c.chunk_id: float(by_chunk[c.chunk_id] @ target / np.linalg.norm(target)) for c in walked.found}
    assert [c.chunk_id for c in out] == sorted(want, key=lambda k: -want[k])
    for c in out:
        assert c.rank_score == pytest.approx(want[c.chunk_id], abs=1e-5)
        assert c.score == pytest.approx(float(by_chunk[c.chunk_id] @ q), abs=1e-5)
    assert await store.feedback(q, [], 0.6, walked) == walked.found
