"""Wires the search service to gRPC, PostgreSQL, Redis and NATS."""

from __future__ import annotations

from shared.gen.tessera.v1 import search_pb2, search_pb2_grpc
from shared.service import Runtime, main

SERVICE = "search"
NEEDS = ("postgres", "nats", "redis")
OWNER = "the knowledge pipeline (ingest → embed → hybrid search)"


async def setup(rt: Runtime) -> None:
    rt.host.add_service(search_pb2, search_pb2_grpc, "SearchService", OWNER)


def run() -> None:
    main(SERVICE, NEEDS, setup)
