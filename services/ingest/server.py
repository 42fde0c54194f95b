"""Wires the ingest service to gRPC, PostgreSQL and NATS."""

from __future__ import annotations

from shared.gen.tessera.v1 import ingest_pb2, ingest_pb2_grpc
from shared.service import Runtime, main

SERVICE = "ingest"
NEEDS = ("postgres", "nats")
OWNER = "the knowledge pipeline (ingest → embed → hybrid search)"


async def setup(rt: Runtime) -> None:
    rt.host.add_service(ingest_pb2, ingest_pb2_grpc, "IngestService", OWNER)


def run() -> None:
    main(SERVICE, NEEDS, setup)
