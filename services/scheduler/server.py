"""Wires the scheduler to gRPC and NATS."""

from __future__ import annotations

from shared.gen.tessera.v1 import scheduler_pb2, scheduler_pb2_grpc
from shared.service import Runtime, main

SERVICE = "scheduler"
NEEDS = ("nats",)
OWNER = "the GPU scheduler shared by chat, embed and tensor"


async def setup(rt: Runtime) -> None:
    rt.host.add_service(scheduler_pb2, scheduler_pb2_grpc, "SchedulerService", OWNER)


def run() -> None:
    main(SERVICE, NEEDS, setup)
