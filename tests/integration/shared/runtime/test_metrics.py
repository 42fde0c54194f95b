"""Prometheus /metrics of every service (its metrics port) and of the gateway (its HTTP port), scraped and parsed."""

from __future__ import annotations

from pathlib import Path

import httpx
from helpers import ADMIN, ServiceProcess
from prometheus_client.parser import text_string_to_metric_families

from shared.client import Client
from shared.runtime.config import SERVICES, Settings

#: What each process must expose, beyond the gRPC and process families every one has.
EXPECTED = {
    "ingest": {"tessera_db_pool_connections"},
    "embed": {"tessera_embed_texts", "tessera_embed_batch_seconds", "tessera_embed_jetstream_pending", "tessera_cache_requests"},
    "search": {"tessera_db_pool_connections", "tessera_cache_requests"},
    "chat": {"tessera_chat_queue_depth", "tessera_chat_slots_busy", "tessera_chat_time_to_first_token_seconds",
             "tessera_chat_decode_tokens_per_second"},
    "tensor": {"tessera_tensor_tiles_in_flight"},
    "scheduler": {"tessera_gpu_leases", "tessera_gpu_leased_bytes"},
    "gateway": {"tessera_http_requests", "tessera_http_request_seconds", "tessera_http_open_event_streams"},
}


async def scrape(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(headers=ADMIN, timeout=10) as http:  # the gateway's /metrics needs the key
        r = await http.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text[:200]
    return {f.name: f for f in text_string_to_metric_families(r.text)}


async def test_every_service_serves_metrics(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path) -> None:
    async with Client(infra) as client:  # some traffic first: a search, an embedding, an answer
        await client.search("descale a kettle")
        await client.embed(["a text never embedded before: metrics"])
        await client.ask("How do I descale a kettle?", max_tokens=16)
    for service in SERVICES:
        url = (f"http://127.0.0.1:{infra.gateway_port}/metrics" if service == "gateway"
               else f"http://127.0.0.1:{infra.metrics_port(service)}/metrics")
        families = await scrape(url)
        missing = ({"tessera_grpc_server_handled", "tessera_grpc_server_handling_seconds", "process_resident_memory_bytes"}
                   | EXPECTED[service]) - set(families)
        assert not missing, f"{service}: {missing}"
        handled = families["tessera_grpc_server_handled"]
        assert any(s.labels.get("code") == "OK" and s.value > 0 for s in handled.samples), f"{service}: no gRPC call counted"  # type: ignore[attr-defined]
    chat = await scrape(f"http://127.0.0.1:{infra.metrics_port('chat')}/metrics")
    ttft = next(s for s in chat["tessera_chat_time_to_first_token_seconds"].samples if s.name.endswith("_count"))  # type: ignore[attr-defined]
    assert ttft.value >= 1
    gateway = await scrape(f"http://127.0.0.1:{infra.gateway_port}/metrics")
    routes = {s.labels["route"] for s in gateway["tessera_http_requests"].samples}  # type: ignore[attr-defined]
    assert "/metrics" in routes  # the first scrape was counted under its route template
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"http://127.0.0.1:{infra.metrics_port('search')}/nothing")).status_code == 404
