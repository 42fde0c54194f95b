"""The services' gRPC ports against the real mesh: a local process without the key gets nothing from any of them; only
health and reflection (the API's shape, no data) answer without one (issue 28)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import ServiceProcess

from shared.gen.tessera.v1 import chat_pb2, common_pb2, common_pb2_grpc, ingest_pb2, search_pb2
from shared.runtime.config import SERVICES, Settings

#: One call per service that reads or writes notes (or what the mesh knows), by its full method path.
READS = {
    "search": ("/tessera.v1.SearchService/Search", search_pb2.SearchRequest(query="kettle")),
    "ingest": ("/tessera.v1.IngestService/ListDocuments", ingest_pb2.ListDocumentsRequest()),
    "chat": ("/tessera.v1.ChatService/ListConversations", chat_pb2.ListConversationsRequest()),
}


@pytest.mark.parametrize("service", SERVICES)
async def test_no_key_no_call_on_any_service(infra: Settings, mesh: dict[str, ServiceProcess], service: str) -> None:
    """Hole: any local process that reached a gRPC port (loopback) could list, read and change every note."""
    async with grpc.aio.insecure_channel(infra.address(service)) as channel:
        for metadata in ((), (("authorization", "Bearer guess"),), (("authorization", "Basic abc"),)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await common_pb2_grpc.NodeServiceStub(channel).GetInfo(common_pb2.GetInfoRequest(), timeout=10, metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "key" in (err.value.details() or "")
            if service in READS:
                path, request = READS[service]
                call = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=lambda b: b)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(request, timeout=10, metadata=metadata)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)  # no key needed


async def test_an_upload_without_the_key_is_refused_and_read_to_its_end(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    async with grpc.aio.insecure_channel(infra.address("ingest")) as channel:
        frames = [ingest_pb2.IngestDocumentChunk(header=ingest_pb2.DocumentHeader(path="upload://intruder.md")),
                  *[ingest_pb2.IngestDocumentChunk(data=b"x" * 60_000) for _ in range(10)]]
        call = channel.stream_unary("/tessera.v1.IngestService/IngestDocument", request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(iter(frames), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
