"""Wires the embed service to gRPC, Redis (cache of vectors) and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np

from services.embed.encoder import EMBED_WORKSPACE, Encoder, cache_key, default_model_path, device_for_lease, model_bytes
from shared.gen.tessera.v1 import embed_pb2, embed_pb2_grpc
from shared.gpu import GpuLeases, Priority
from shared.service import Runtime, main

SERVICE = "embed"
NEEDS = ("postgres", "nats", "redis")
OWNER = "the knowledge pipeline (ingest → embed → hybrid search)"
MAX_TEXTS = 2048
MAX_TEXT_CHARS = 100_000


class EmbedHandlers:
    def __init__(self, rt: Runtime, encoder: Encoder) -> None:
        self.rt, self.encoder = rt, encoder

    async def Embed(self, request: embed_pb2.EmbedRequest, context: grpc.aio.ServicerContext) -> embed_pb2.EmbedResponse:
        texts = list(request.texts)
        if not texts:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "embed: texts is empty; send at least one text")
        if len(texts) > MAX_TEXTS:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"embed: {len(texts)} texts in one call; the limit is {MAX_TEXTS}")
        too_long = next((i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS), None)
        if too_long is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"embed: text {too_long} has {len(texts[too_long])} characters; the limit is {MAX_TEXT_CHARS}")
        if request.model and request.model != self.encoder.model_id:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"embed: model {request.model!r} is not served here; this service runs {self.encoder.model_id!r}")
        assert self.rt.cache is not None
        keys = [cache_key(self.encoder.model_id, t) for t in texts]
        cached = await self.rt.cache.get_many(keys)
        missing = [i for i, hit in enumerate(cached) if hit is None]
        vectors: list[np.ndarray | None] = [np.frombuffer(c, dtype=np.float32) if c is not None else None for c in cached]
        if missing:
            fresh = await asyncio.to_thread(self.encoder.encode, [texts[i] for i in missing])
            for i, vec in zip(missing, fresh, strict=True):
                vectors[i] = vec
            await self.rt.cache.set_many({keys[i]: fresh[j].tobytes() for j, i in enumerate(missing)},
                                         self.rt.settings.embed_cache_ttl_s)
        return embed_pb2.EmbedResponse(
            model_id=self.encoder.model_id, dim=self.encoder.dim, cache_hits=len(texts) - len(missing),
            vectors=[embed_pb2.Vector(values=v.tolist()) for v in vectors if v is not None],
        )

    async def GetModel(self, request: embed_pb2.GetModelRequest, context: grpc.aio.ServicerContext) -> embed_pb2.ModelInfo:
        return embed_pb2.ModelInfo(model_id=self.encoder.model_id, dim=self.encoder.dim, device=self.encoder.device,
                                   max_seq_length=self.encoder.max_seq_length)


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    path = Path(settings.embed_model_path) if settings.embed_model_path else default_model_path()
    device, batch_size = "cpu", 64
    if settings.embed_device != "cpu":
        gpu = GpuLeases(settings, rt.channels, SERVICE, rt.instance_id)
        rt.host.on_close(gpu.close)
        lease = await gpu.acquire(Priority.PRIORITY_QUERY_EMBEDDING, model_bytes(path) + EMBED_WORKSPACE)
        device, batch_size = device_for_lease(settings.embed_device, lease.device, lease.bytes - model_bytes(path))
    encoder = await asyncio.to_thread(Encoder, settings.embed_model, path, device, batch_size)
    async def model_ready() -> str:
        return f"{encoder.model_id} ({encoder.dim}-d) on {encoder.device}"

    rt.host.add_dependency("model", model_ready)
    handlers = EmbedHandlers(rt, encoder)
    rt.host.add_service(embed_pb2, embed_pb2_grpc, "EmbedService", OWNER, Embed=handlers.Embed, GetModel=handlers.GetModel)


def run() -> None:
    main(SERVICE, NEEDS, setup)
