"""Wires the chat service to gRPC, PostgreSQL (conversations) and NATS."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.chat.model import ChatModel, default_model_path, layer_count, layers_granted, offload_plan
from shared.errors import ConfigError
from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc
from shared.gpu import GpuLeases, Priority, on_gpu
from shared.service import Runtime, main

SERVICE = "chat"
NEEDS = ("postgres", "nats")
OWNER = "chat and gateway (streamed RAG answers with citations)"


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    path = Path(settings.chat_model_path) if settings.chat_model_path else default_model_path()
    if not path.is_file():
        raise ConfigError("TESSERA_CHAT_MODEL_PATH", f"{path} is not a file")
    layers = await asyncio.to_thread(layer_count, path)
    wanted, nbytes = offload_plan(path, layers, settings.chat_gpu_layers, settings.chat_context)
    gpu = GpuLeases(settings, rt.channels, SERVICE, rt.instance_id)
    rt.host.on_close(gpu.close)
    lease = await gpu.acquire(Priority.PRIORITY_INTERACTIVE, nbytes) if wanted else None
    n_gpu = layers_granted(lease.bytes, path, layers, wanted, settings.chat_context) if lease and on_gpu(lease) else 0
    model = await asyncio.to_thread(ChatModel, path, settings.chat_context, settings.chat_threads, n_gpu)
    rt.extras["model"] = model

    async def model_ready() -> str:
        return model.describe()

    rt.host.add_dependency("model", model_ready)
    rt.host.add_service(chat_pb2, chat_pb2_grpc, "ChatService", OWNER)


def run() -> None:
    main(SERVICE, NEEDS, setup)
