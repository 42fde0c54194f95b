"""A search does not wait for the embed service: the query encoder runs inside the search process, so a hybrid
search answers with both signals while embed is down. Without it (query_encoder = embed) the same search answers
from the lexical signal alone and says so; a vector-only search fails UNAVAILABLE."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from helpers import Launcher, ServiceProcess, mesh_channel, wait_serving

from shared.gen.tessera.v1 import common_pb2, search_pb2, search_pb2_grpc
from shared.ops.infra import free_port
from shared.runtime.config import Settings

QUERY = search_pb2.SearchRequest(query="how do I descale a kettle", top_k=3, filters=common_pb2.Filters(project="home"), bypass_cache=True)


async def private_search(infra: Settings, launcher: Launcher, encoder: str) -> tuple[ServiceProcess, str]:
    """A search instance of its own whose embed service is down (nothing listens at its address)."""
    port = free_port()
    settings = infra.with_overrides(search_port=port, search_metrics_port=free_port(), embed_addr=f"127.0.0.1:{free_port()}")
    proc = launcher.start("search", settings, TESSERA_SEARCH_QUERY_ENCODER=encoder, TESSERA_SEARCH_EMBED_TIMEOUT_S="1")
    await asyncio.to_thread(wait_serving, settings, [proc])  # it calls asyncio.run
    return proc, f"127.0.0.1:{port}"


async def test_hybrid_search_answers_while_embed_is_down(infra: Settings, launcher: Launcher, home_notes: Path) -> None:
    proc, target = await private_search(infra, launcher, "int8")
    try:
        async with mesh_channel(infra, target) as ch:
            stub = search_pb2_grpc.SearchServiceStub(ch)
            end = time.monotonic() + 60  # the encoder loads beside the service's start; until then, queries need embed
            while (reply := await stub.Search(QUERY, timeout=10)).degraded:
                assert reply.degraded.startswith("lexical results only") and time.monotonic() < end, reply.degraded
                await asyncio.sleep(0.5)
            top = reply.hits[0]
            assert top.source.path.endswith("kettle.md")
            vector = next(s for s in top.signals if s.name == "vector")
            assert vector.rank == 1 and vector.score > 0.5, top.signals  # the vector signal answered, from this process
        assert "query encoder in process" in proc.output() and '"variant": "int8"' in proc.output()
    finally:
        proc.stop()


async def test_without_the_encoder_in_process_a_hybrid_search_degrades_to_lexical(infra: Settings, launcher: Launcher,
                                                                                 home_notes: Path) -> None:
    proc, target = await private_search(infra, launcher, "embed")
    try:
        async with mesh_channel(infra, target) as ch:
            stub = search_pb2_grpc.SearchServiceStub(ch)
            asked = search_pb2.SearchRequest()
            asked.CopyFrom(QUERY)  # a text of its own: QUERY's full answer may be in the shared cache from another test
            asked.query, asked.bypass_cache = "descale a kettle while embed is down", False
            for _ in range(2):  # a degraded answer is not cached: the second is worked out again, and says so again
                reply = await stub.Search(asked, timeout=10)
                assert not reply.cached
                assert reply.degraded.startswith("lexical results only") and "embed service did not give" in reply.degraded
                assert reply.hits[0].source.path.endswith("kettle.md")
                assert [s.name for s in reply.hits[0].signals] == ["lexical"]
            vector_only = search_pb2.SearchRequest()
            vector_only.CopyFrom(QUERY)
            vector_only.mode = search_pb2.SEARCH_MODE_VECTOR
            with pytest.raises(grpc.aio.AioRpcError) as err:  # nothing to degrade to
                await stub.Search(vector_only, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "embed service did not give the query's vector" in err.value.details()
    finally:
        proc.stop()
