"""Wires the chat service to gRPC, PostgreSQL (conversations) and NATS."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.chat.model import ChatModel, default_model_path
from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc
from shared.service import Runtime, main

SERVICE = "chat"
NEEDS = ("postgres", "nats")
OWNER = "chat and gateway (streamed RAG answers with citations)"


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    path = Path(settings.chat_model_path) if settings.chat_model_path else default_model_path()
    model = await asyncio.to_thread(ChatModel, path, settings.chat_context, settings.chat_threads)
    rt.extras["model"] = model

    async def model_ready() -> str:
        return model.describe()

    rt.host.add_dependency("model", model_ready)
    rt.host.add_service(chat_pb2, chat_pb2_grpc, "ChatService", OWNER)


def run() -> None:
    main(SERVICE, NEEDS, setup)
