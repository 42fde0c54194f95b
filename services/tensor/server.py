"""Wires the tensor service to gRPC and NATS."""

from __future__ import annotations

from shared.gen.tessera.v1 import tensor_pb2, tensor_pb2_grpc
from shared.service import Runtime, main

SERVICE = "tensor"
NEEDS = ("nats",)
OWNER = "the tensor service (tricubic resampling in tiles)"


async def setup(rt: Runtime) -> None:
    rt.host.add_service(tensor_pb2, tensor_pb2_grpc, "TensorService", OWNER)


def run() -> None:
    main(SERVICE, NEEDS, setup)
