"""Prometheus metrics of a process, and the small HTTP server that serves them at /metrics.

Every service gets, from the runtime alone:

* gRPC per method: ``tessera_grpc_server_handled_total{method,code}``,
  ``tessera_grpc_server_handling_seconds{method}`` (a histogram on the
  ``TESSERA_METRICS_BUCKETS_MS`` bounds) and ``tessera_grpc_server_in_flight{method}``, read at
  scrape time from the same counters ``NodeService/GetInfo`` reports (one source of truth);
* the database pool (``tessera_db_pool_connections{state}``) and the cache
  (``tessera_cache_requests_total{result}``: hit, miss, error);
* the process collectors of prometheus-client (resident memory, CPU, open files).

The services add their own: the chat queue, tokens per second and time to first token;
embed throughput and JetStream pending; tensor tiles in flight; GPU leases by class. A value
that must be read from somewhere (a queue depth) is set by a ``refresh`` hook that runs
before each scrape. Services serve it on their ``*_metrics_port``; the gateway on its HTTP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("tessera.metrics")

Refresh = Callable[[], Awaitable[None]]
_refreshers: list[Refresh] = []

# -- shared by several services ----------------------------------------------------------------------------------------
DB_POOL = Gauge("tessera_db_pool_connections", "PostgreSQL pool connections: size, idle (available) and requests waiting.", ["state"])
CACHE = Counter("tessera_cache_requests", "Cache lookups by result: hit, miss, or error (Redis down: served without it).", ["result"])
# -- chat --------------------------------------------------------------------------------------------------------------
CHAT_QUEUE = Gauge("tessera_chat_queue_depth", "Chat requests waiting for a model slot.")
CHAT_BUSY = Gauge("tessera_chat_slots_busy", "Model slots generating now.")
CHAT_SLOTS = Gauge("tessera_chat_slots", "Model slots of this process.")
CHAT_TTFT = Histogram("tessera_chat_time_to_first_token_seconds", "From the request to its first streamed token (retrieval, queue and prefill).",
                      buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64))
CHAT_TOKENS_PER_S = Histogram("tessera_chat_decode_tokens_per_second", "Generation speed of each answer after its first token.",
                              buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500))
CHAT_TOKENS = Counter("tessera_chat_generated_tokens", "Tokens generated.")
CHAT_PROMPT_TOKENS = Counter("tessera_chat_prompt_tokens", "Prompt tokens of answers: read from the KV cache (cached) or evaluated.",
                             ["kind"])
CHAT_ANSWERS = Counter("tessera_chat_answers", "Answers by how they ended (stop, length, abstained, cancelled, error, loop).", ["finish"])
CHAT_ENRICHED = Counter("tessera_chat_enriched", "Documents enriched in the background, by outcome (enriched, unenriched).", ["state"])
# -- embed -------------------------------------------------------------------------------------------------------------
EMBED_TEXTS = Counter("tessera_embed_texts", "Texts embedded, by kind (query: Embed calls; chunk: JetStream work).", ["kind"])
EMBED_TOKENS = Counter("tessera_embed_tokens", "Tokens the embedding model ran on, by kind (text: the texts' own; padding: added to "
                                            "fill out a batch to its longest text).", ["kind"])
EMBED_BATCH_SECONDS = Histogram("tessera_embed_batch_seconds", "Time to encode one batch.", buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
EMBED_REQUEUED = Counter("tessera_embed_requeued_documents", "Large documents sent to the back of the queue with the rest of their "
                                                          "chunks after one turn (TESSERA_EMBED_TURN_CHUNKS).")
EMBED_PENDING = Gauge("tessera_embed_jetstream_pending", "Chunk-embedding messages waiting in JetStream (not yet delivered).")
EMBED_ACK_PENDING = Gauge("tessera_embed_jetstream_ack_pending", "Chunk-embedding messages delivered and not yet acknowledged.")
# -- tensor ------------------------------------------------------------------------------------------------------------
BACKGROUND_YIELDS = Counter("tessera_background_yields", "Times background work (embed, enrich) stopped for people, by the work people "
                            "were doing (chat, search).", ["worker", "kind"])
BACKGROUND_PAUSED = Gauge("tessera_background_paused", "1 while this background worker waits for people to finish.", ["worker"])
BACKGROUND_PAUSED_SECONDS = Counter("tessera_background_paused_seconds", "Seconds background work waited for people.", ["worker"])

TENSOR_TILES = Gauge("tessera_tensor_tiles_in_flight", "Tiles being resampled now.")

# -- scheduler ---------------------------------------------------------------------------------------------------------
GPU_LEASES = Gauge("tessera_gpu_leases", "Leases held, by priority class.", ["priority"])
GPU_LEASED_BYTES = Gauge("tessera_gpu_leased_bytes", "Memory granted to leases, by priority class.", ["priority"])
GPU_WAITING = Gauge("tessera_gpu_waiting", "Lease requests waiting, by priority class.", ["priority"])
# -- gateway -----------------------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter("tessera_http_requests", "HTTP requests by method, route and status.", ["method", "route", "status"])
HTTP_SECONDS = Histogram("tessera_http_request_seconds", "HTTP request time to the end of the response, by route.", ["route"],
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
HTTP_STREAMS = Gauge("tessera_http_open_event_streams", "Server-sent event streams open now.")


class RpcCollector(Collector):
    """The gRPC method counters of a ServiceHost, exposed as they are at scrape time."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        handled = CounterMetricFamily("tessera_grpc_server_handled", "gRPC calls handled, by method and status code.", labels=["method", "code"])
        seconds = HistogramMetricFamily("tessera_grpc_server_handling_seconds", "gRPC call duration, by method.", labels=["method"])
        in_flight = GaugeMetricFamily("tessera_grpc_server_in_flight", "gRPC calls being handled now, by method.", labels=["method"])
        for method, s in list(self.stats.items()):
            for code, n in s.codes.items():
                handled.add_metric([method, code], n)
            counts = s.bucket_counts or [0] * len(s.buckets)
            buckets = [(_le(b / 1000), float(c)) for b, c in zip(s.buckets, counts, strict=True)] + [("+Inf", float(s.calls))]
            seconds.add_metric([method], buckets, s.latency_sum / 1000)
            in_flight.add_metric([method], s.in_flight)
        yield handled
        yield seconds
        yield in_flight


def _le(value: float) -> str:
    return f"{value:g}"


_collectors: list[Collector] = []


def add_rpc_collector(stats: dict[str, Any]) -> None:
    """Expose a ServiceHost's method counters (once per process; a second host replaces the first)."""
    for old in _collectors:
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(old)
    _collectors.clear()
    collector = RpcCollector(stats)
    REGISTRY.register(collector)
    _collectors.append(collector)


def on_scrape(fn: Refresh) -> None:
    """Run ``fn`` before each scrape (to read a queue depth, a pool's state)."""
    _refreshers.append(fn)


def watch_pool(pool: Any) -> None:
    """The pool's size, idle connections and waiting requests at each scrape."""
    async def refresh() -> None:
        stats = pool.get_stats()
        DB_POOL.labels("size").set(stats.get("pool_size", 0))
        DB_POOL.labels("idle").set(stats.get("pool_available", 0))
        DB_POOL.labels("waiting").set(stats.get("requests_waiting", 0))
        DB_POOL.labels("max").set(pool.max_size)

    on_scrape(refresh)


async def exposition() -> bytes:
    """The text exposition format, after every refresh hook (each bounded: a slow one leaves its last value)."""
    for fn in list(_refreshers):
        try:
            await asyncio.wait_for(fn(), 2.0)
        except Exception as exc:  # noqa: BLE001 — boundary: one metric's refresh; it keeps its last value
            log.debug("metrics refresh failed", extra={"error": str(exc)})
    return generate_latest(REGISTRY)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        method, path = [*head.split(b"\r\n", 1)[0].split(b" "), b"", b""][:2]
        if method not in (b"GET", b"HEAD"):
            status, body, ctype = b"405 Method Not Allowed", b"only GET /metrics\n", b"text/plain"
        elif path.split(b"?")[0] != b"/metrics":
            status, body, ctype = b"404 Not Found", b"metrics are at /metrics\n", b"text/plain"
        else:
            status, body, ctype = b"200 OK", await exposition(), CONTENT_TYPE_LATEST.encode()
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\nConnection: close\r\n\r\n" + (body if method != b"HEAD" else b""))
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def serve(host: str, port: int) -> asyncio.Server | None:
    """Serve /metrics on host:port; a port in use is logged and skipped (metrics never stop a service)."""
    try:
        return await asyncio.start_server(_handle, host, port, reuse_address=True)
    except OSError as exc:
        log.warning("cannot serve /metrics on %s:%s (%s); this process has no metrics endpoint", host, port, exc.strerror)
        return None
