"""The whole mesh as real processes against real PostgreSQL, NATS and Valkey."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from typing import Any

import grpc
import numpy as np
import pytest
from helpers import ADMIN, ROOT, ServiceProcess, child_env, mesh_channel

from shared.gen.tessera.v1 import (
    common_pb2,
    common_pb2_grpc,
    embed_pb2,
    embed_pb2_grpc,
    tensor_pb2,
    tensor_pb2_grpc,
)
from shared.runtime import bus
from shared.runtime.channels import Channels
from shared.runtime.config import SERVICES, Settings
from shared.runtime.status import mesh_status


async def test_every_service_is_serving(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    report = await mesh_status(infra)
    assert report["ok"], report
    assert [s["service"] for s in report["services"]] == list(SERVICES)
    assert all(s["status"] == "SERVING" and s["instances"] == 1 for s in report["services"])
    assert {i["name"]: i["status"] for i in report["infra"]} == {"postgres": "UP", "nats": "UP", "redis": "UP"}


def test_tessera_status_prints_the_table(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    out = subprocess.run([sys.executable, "-m", "shared.cli", "status"], cwd=ROOT, env=child_env(infra),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in (*SERVICES, "postgres", "nats", "redis"):
        assert name in out.stdout
    assert out.stdout.count("SERVING") == len(SERVICES)
    as_json = subprocess.run([sys.executable, "-m", "shared.cli", "status", "--json"], cwd=ROOT, env=child_env(infra),
                             capture_output=True, text=True, timeout=60)
    assert json.loads(as_json.stdout)["ok"] is True


async def test_instances_register_with_nats_micro(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    nc = await bus.connect(infra, "test-mesh")
    try:
        for service in SERVICES:
            found = await bus.discover(nc, service)
            assert [i["grpc_addr"] for i in found] == [infra.address(service)]
    finally:
        await nc.close()


async def test_the_mesh_tensor_service_resamples(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    # Every RPC of every service is implemented now; the tensor one answers on the mesh's own tile queue.
    v = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    spec = tensor_pb2.ResampleSpec(kernel=tensor_pb2.KERNEL_KEYS, dtype=tensor_pb2.DTYPE_FLOAT64, input_shape=v.shape, zoom=[1, 1, 1])
    async with mesh_channel(infra, infra.address("tensor")) as ch:
        call = tensor_pb2_grpc.TensorServiceStub(ch).Resample(
            iter([tensor_pb2.ResampleRequest(spec=spec), tensor_pb2.ResampleRequest(data=v.tobytes())]), timeout=30)
        frames = [f async for f in call]
    assert [f.WhichOneof("frame") for f in frames] == ["start", "tile", "tile", "end"]  # a tile per time step
    got = np.zeros_like(v)
    for f in frames[1:3]:
        got[f.tile.offset[0]] = np.frombuffer(f.tile.data, np.float64).reshape(v.shape[1:])
    assert got.tolist() == v.tolist()  # zoom 1 samples every input point exactly


async def test_embed_serves_real_vectors_and_caches_them(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    async with mesh_channel(infra, infra.address("embed")) as ch:
        stub = embed_pb2_grpc.EmbedServiceStub(ch)
        texts = ["The cat sat on the mat.", "A kitten rested on the rug.", "Quarterly revenue grew by 4%."]
        first = await stub.Embed(embed_pb2.EmbedRequest(texts=texts), timeout=30)
        assert first.model_id == "all-MiniLM-L6-v2" and first.dim == 384 and len(first.vectors) == 3
        import numpy as np

        v = np.array([list(x.values) for x in first.vectors])
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
        assert v[0] @ v[1] > v[0] @ v[2] + 0.2, "paraphrases must be closer than unrelated text"
        again = await stub.Embed(embed_pb2.EmbedRequest(texts=[*texts[:2], "new text"]), timeout=30)
        assert again.cache_hits == 2
        assert np.allclose(np.array(again.vectors[0].values), v[0])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Embed(embed_pb2.EmbedRequest(texts=["x"], model="other-model"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and "all-MiniLM-L6-v2" in err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Embed(embed_pb2.EmbedRequest(texts=[]), timeout=5)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at least one text" in err.value.details()
        info = await common_pb2_grpc.NodeServiceStub(ch).GetInfo(common_pb2.GetInfoRequest(), timeout=5)
    embed_metrics = next(m for m in info.methods if m.method == "/tessera.v1.EmbedService/Embed")
    assert embed_metrics.calls >= 4 and embed_metrics.codes["INVALID_ARGUMENT"] >= 1 and embed_metrics.codes["OK"] >= 2
    assert {d.name for d in info.dependencies} == {"nats", "postgres", "redis", "model", "index_model"}


async def test_request_id_reaches_the_service_log(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    async with mesh_channel(infra, infra.address("embed")) as ch:
        with pytest.raises(grpc.aio.AioRpcError):
            await embed_pb2_grpc.EmbedServiceStub(ch).Embed(embed_pb2.EmbedRequest(texts=[]), timeout=5,
                                                            metadata=(("x-request-id", "rid-in-log-42"),))
    lines: list[dict[str, Any]] = []
    for _ in range(100):  # the service writes its log line after the reply has left
        lines = [json.loads(line) for line in mesh["embed"].output().splitlines() if "rid-in-log-42" in line]
        if lines:
            break
        await asyncio.sleep(0.05)
    assert lines and all(line["request_id"] == "rid-in-log-42" for line in lines)


async def test_gateway_answers_http(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    def get(path: str) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{infra.gateway_port}{path}", headers=ADMIN)
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)

    status, report = await asyncio.to_thread(get, "/api/v1/status")
    assert status == 200 and report["ok"]
    backlog = report["backlog"]  # background work left, its pace and ETA
    assert all(backlog[k] >= 0 for k in ("chunks_waiting", "chunks_per_minute", "embed_eta_s", "enrich_waiting", "enrich_eta_s")), backlog
    assert await asyncio.to_thread(get, "/readyz") == (200, {"ready": True})


async def test_nats_discovery_reaches_the_services(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    settings = infra.with_overrides(discovery="nats")
    nc = await bus.connect(settings, "test-discovery-client")
    channels = Channels(settings, nc)
    try:
        assert await channels.target("embed") == f"ipv4:{infra.address('embed')}"
        stub = await channels.stub("embed", embed_pb2_grpc.EmbedServiceStub)
        assert (await stub.GetModel(embed_pb2.GetModelRequest())).dim == 384
    finally:
        await channels.close()
        await nc.close()


async def test_reflection_lists_the_services(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with mesh_channel(infra, infra.address("search")) as ch:
        call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name async for reply in call for s in reply.list_services_response.service}
    assert {"tessera.v1.SearchService", "tessera.v1.NodeService", "grpc.health.v1.Health"} <= names
