"""Search's SQL (its store module) against the real PostgreSQL with pgvector, without the services."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import store_document
from psycopg_pool import AsyncConnectionPool

from services.embed.store import EmbedStore
from services.ingest.store import IngestStore
from services.search.store import SearchStore
from shared.gen.tessera.v1 import common_pb2
from shared.runtime import analyzer
from shared.runtime.config import Settings


async def test_search_store_lexical_and_vector_candidates_respect_filters(pool: AsyncConnectionPool, project: str) -> None:
    ingest, embed = IngestStore(pool), EmbedStore(pool, "test-model")
    docs = [store_document(project, "kettle", ["descale the kettle with citric acid"]), store_document(project, "bike", ["oil the bike chain"])]
    job = await ingest.new_job("", project, [d.path for d in docs])
    for d in docs:
        await ingest.replace_document(job, d)
    rows = await embed.pending([d.id for d in docs])
    basis = np.eye(384, dtype=np.float32)
    await embed.write_vectors([(cid, basis[1] if "bike" in text else basis[0]) for cid, _, text, _ in rows])
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
