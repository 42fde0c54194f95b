"""The committed stubs must be what `make protos` generates from protos/ now."""

from __future__ import annotations

from shared.gen.tessera.v1 import chat_pb2, common_pb2, embed_pb2, ingest_pb2, scheduler_pb2, search_pb2, tensor_pb2
from shared.ops import protogen


def test_generated_stubs_are_fresh() -> None:
    stale = protogen.stale_files()
    assert stale == [], f"stale generated code, run `make protos`: {stale}"


def test_every_service_has_its_api() -> None:
    services = {
        ingest_pb2: ("IngestService", {"IngestDocument", "IngestPath", "GetJob", "WatchJob"}),
        embed_pb2: ("EmbedService", {"Embed", "GetModel"}),
        search_pb2: ("SearchService", {"Search", "Related"}),
        chat_pb2: ("ChatService", {"Chat", "StartChat", "GetConversation"}),
        tensor_pb2: ("TensorService", {"Resample", "StartResample"}),
        scheduler_pb2: ("SchedulerService", {"Acquire", "Renew", "Release", "Status"}),
        common_pb2: ("NodeService", {"GetInfo"}),
    }
    for module, (name, methods) in services.items():
        descriptor = module.DESCRIPTOR.services_by_name[name]
        assert descriptor.full_name == f"tessera.v1.{name}"
        assert methods <= {m.name for m in descriptor.methods}


def test_streaming_shapes() -> None:
    chat = chat_pb2.DESCRIPTOR.services_by_name["ChatService"].methods_by_name["Chat"]
    assert chat.server_streaming and not chat.client_streaming
    upload = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].methods_by_name["IngestDocument"]
    assert upload.client_streaming and not upload.server_streaming
    resample = tensor_pb2.DESCRIPTOR.services_by_name["TensorService"].methods_by_name["Resample"]
    assert resample.client_streaming and resample.server_streaming
