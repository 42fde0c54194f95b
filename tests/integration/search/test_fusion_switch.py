"""TESSERA_SEARCH_FUSION=rrf, end to end: a second search service started with it ranks the session's notes by weighted
reciprocal rank fusion, with the default weights (lexical and vector equal): each hit scores the sum over the signals
that retrieved it of 1 / (TESSERA_SEARCH_RRF_K + rank). The session's search (dbsf) answers the same query first, and
its cached result is not what the rrf instance serves (the fusion is part of the result cache's key)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Launcher, ServiceProcess, mesh_channel, service_ports, wait_serving

from shared.gen.tessera.v1 import common_pb2, search_pb2, search_pb2_grpc
from shared.runtime.config import Settings, load_settings, settings_env

K = 20


@pytest.fixture(scope="module")
def rrf_search(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher) -> Iterator[Settings]:
    ports = service_ports()
    settings = load_settings({**settings_env(infra), "TESSERA_SEARCH_PORT": ports["TESSERA_SEARCH_PORT"],
                              "TESSERA_SEARCH_METRICS_PORT": ports["TESSERA_SEARCH_METRICS_PORT"],
                              "TESSERA_SEARCH_FUSION": "rrf", "TESSERA_SEARCH_RRF_K": str(K)})
    proc = launcher.start("search", settings)
    wait_serving(settings, [proc])
    yield settings
    proc.stop()


async def search(settings: Settings, query: str) -> search_pb2.SearchResponse:
    async with mesh_channel(settings, settings.address("search")) as ch:
        request = search_pb2.SearchRequest(query=query, top_k=5, filters=common_pb2.Filters(project="home"))
        reply: search_pb2.SearchResponse = await search_pb2_grpc.SearchServiceStub(ch).Search(request, timeout=60)
        return reply


async def test_rrf_scores_are_reciprocal_ranks(infra: Settings, home_notes: Path, rrf_search: Settings) -> None:
    query = f"descale the kettle {uuid.uuid4().hex[:6]}"  # the dbsf answer is cached first: the rrf one must not be served it
    dbsf = await search(infra, query)
    rrf = await search(rrf_search, query)
    assert rrf.hits and rrf.hits[0].source.path.endswith("kettle.md") and dbsf.hits[0].source.path.endswith("kettle.md")
    for hit in rrf.hits:
        ranks = [s.rank for s in hit.signals if s.rank]
        assert ranks and hit.score == pytest.approx(sum(1 / (K + r) for r in ranks) * hit.recency, rel=1e-6), (hit.score, ranks)
    top = rrf.hits[0]
    assert {s.name for s in top.signals if s.rank} == {"lexical", "vector"} and top.score == pytest.approx(2 / (K + 1) * top.recency)
    assert dbsf.hits[0].score != pytest.approx(rrf.hits[0].score), "the session's search fuses by dbsf, not by ranks"
