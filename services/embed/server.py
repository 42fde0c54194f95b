"""Wires the embed service: the Embed RPC (micro-batched, Redis-cached) and the
background workers that embed queued chunks into pgvector.

Workers pull from the TESSERA_EMBED work queue and ack only after the vectors are
committed; a worker killed mid-batch leaves its messages unacked, they are
redelivered, and the (chunk, model) key makes the second write the only one.
Embed writes only its own tables (chunk_vectors, embed_queue, links); what follows
from a document being embedded is ingest's, told on VECTORS_SUBJECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import nats.errors
import numpy as np
from opentelemetry.trace import SpanKind

from services.embed.batcher import MicroBatcher
from services.embed.encoder import EMBED_WORKSPACE, Encoder, cache_key, device_for_lease, model_bytes
from services.embed.store import EmbedStore
from shared.contracts import EMBED_STREAM, EMBED_SUBJECT, VECTORS_SUBJECT, VectorsWritten, embed_request, parse_embed_request
from shared.errors import InvalidArgument, NotFound
from shared.gen.tessera.v1 import embed_pb2, embed_pb2_grpc
from shared.runtime import bus, metrics, query_encoder, tracing
from shared.runtime.gpu import GpuLeases, Priority
from shared.runtime.query_encoder import default_model_dir
from shared.runtime.service import Runtime, main

SERVICE = "embed"
NEEDS = ("postgres", "nats", "redis")
MAX_TEXTS = 2048
MAX_TEXT_CHARS = 100_000
DURABLE = "embed-workers"
#: Queue batches a worker holds at once: one is encoded while the one before it is written, linked and acknowledged,
#: so the encoder does not wait on the database (the encoder itself takes one batch at a time).
PIPELINE = 2
#: Chunks encoded between two looks at what people are doing (shared/runtime/foreground.py): about 0.2 s on 2 cores.
YIELD_EVERY = 16
#: A message for a document the other batch in hand is encoding comes back after this long.
HELD_RETRY_S = 2.0
log = logging.getLogger("tessera.embed")


def chunk_input(context: str, text: str) -> str:
    """What is embedded for a chunk: its title/heading context, then its text."""
    return f"{context}\n{text}" if context else text


def timed(encode: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """``encode`` that records each batch's time in tessera_embed_batch_seconds."""
    def run(texts: list[str]) -> Any:
        with metrics.EMBED_BATCH_SECONDS.time():
            return encode(texts)

    return run


class EmbedHandlers:
    def __init__(self, rt: Runtime, encoder: Encoder, batcher: MicroBatcher) -> None:
        self.rt, self.encoder, self.batcher = rt, encoder, batcher

    async def Embed(self, request: embed_pb2.EmbedRequest, context: grpc.aio.ServicerContext) -> embed_pb2.EmbedResponse:
        texts = list(request.texts)
        if not texts:
            raise InvalidArgument("embed: texts is empty; send at least one text")
        if len(texts) > MAX_TEXTS:
            raise InvalidArgument(f"embed: {len(texts)} texts in one call; the limit is {MAX_TEXTS}")
        too_long = next((i for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS), None)
        if too_long is not None:
            raise InvalidArgument(f"embed: text {too_long} has {len(texts[too_long])} characters; the limit is {MAX_TEXT_CHARS}")
        if request.model and request.model != self.encoder.model_id:
            raise NotFound(f"embed: model {request.model!r} is not served here; this service runs {self.encoder.model_id!r}")
        assert self.rt.cache is not None
        keys = [cache_key(self.encoder.model_id, t) for t in texts]
        cached = await self.rt.cache.get_many(keys)
        missing = [i for i, hit in enumerate(cached) if hit is None]
        vectors: list[np.ndarray | None] = [np.frombuffer(c, dtype=np.float32) if c is not None else None for c in cached]
        if missing:
            kind = "chunk" if request.purpose == embed_pb2.EMBED_PURPOSE_DOCUMENT else "query"
            metrics.EMBED_TEXTS.labels(kind).inc(len(missing))
            fresh = await self.batcher.embed([texts[i] for i in missing])
            for i, vec in zip(missing, fresh, strict=True):
                vectors[i] = vec
            await self.rt.cache.set_many({keys[i]: fresh[j].tobytes() for j, i in enumerate(missing)},
                                         self.rt.settings.embed.cache_ttl_s)
        return embed_pb2.EmbedResponse(
            model_id=self.encoder.model_id, dim=self.encoder.dim, cache_hits=len(texts) - len(missing),
            vectors=[embed_pb2.Vector(values=v.tolist()) for v in vectors if v is not None],
        )

    async def GetModel(self, request: embed_pb2.GetModelRequest, context: grpc.aio.ServicerContext) -> embed_pb2.ModelInfo:
        return embed_pb2.ModelInfo(model_id=self.encoder.model_id, dim=self.encoder.dim, device=self.encoder.device,
                                   max_seq_length=self.encoder.max_seq_length)


class Worker:
    """Embeds queued documents' chunks into chunk_vectors and links related documents; says so on VECTORS_SUBJECT."""

    def __init__(self, rt: Runtime, encoder: Encoder) -> None:
        self.rt, self.encoder = rt, encoder
        self.store = EmbedStore(rt.db, encoder.model_id)
        self.queue = bus.WorkQueue(rt.nats, EMBED_STREAM, EMBED_SUBJECT, DURABLE, ack_wait_s=rt.settings.embed.ack_wait_s,
                                   max_ack_pending=1000, batch=16)
        self._encoding = asyncio.Lock()
        self._in_hand: set[uuid.UUID] = set()  # documents the batches in hand are encoding
        embed = rt.settings.embed
        self.yield_limits = {k: v for k, v in (("chat", embed.yield_chat_s), ("search", embed.yield_search_s)) if v > 0}

    async def handle(self, msgs: list[Any]) -> None:
        """One batch: its documents' chunks encoded and written, then every message acknowledged."""
        # One span per message, under the trace of the ingest that queued it (the NATS hop keeps the trace).
        spans = [tracing.start("embed document", kind=SpanKind.CONSUMER, parent=bus.trace_parent(m), document=str(parse_embed_request(m.data)),
                               batch=len(msgs)) for m in msgs]
        try:
            held = await self._process(msgs)
        finally:
            for span in spans:
                span.end()
        for m in msgs:
            if parse_embed_request(m.data) in held:
                await m.nak(delay=HELD_RETRY_S)
            else:
                await m.ack()

    async def encode(self, texts: list[str], seen: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Vectors of chunk texts: the ones the Embed RPC already made (a capture's duplicate check) come from the
        cache, so every chunk is encoded once, and a text repeated (a log's line: in ``texts``, or in ``seen``, the
        texts of the turn so far) is encoded once for all its chunks: they get one vector, which write_vectors puts
        in the HNSW graph once."""
        seen = {} if seen is None else seen
        cache = self.rt.cache
        keys = [cache_key(self.encoder.model_id, t) for t in texts]
        cached = await cache.get_many(keys) if cache is not None else [None] * len(texts)
        out: list[np.ndarray | None] = [seen.get(t) if c is None else np.frombuffer(c, dtype=np.float32)
                                        for t, c in zip(texts, cached, strict=True)]
        first: dict[str, int] = {}
        repeats = [(i, first[texts[i]]) for i in range(len(texts)) if out[i] is None and first.setdefault(texts[i], i) != i]
        missing = [i for i, v in enumerate(out) if v is None and first[texts[i]] == i]
        for start in range(0, len(missing), YIELD_EVERY):
            step = missing[start:start + YIELD_EVERY]
            # People first: a step waits while an answer is generated or searches come in (bounded: imports go on).
            await self.rt.foreground.yield_to_people("embed", self.yield_limits)
            await self.rt.foreground.embedding()  # and enrichment waits for the import
            async with self._encoding:  # the other batch in hand meanwhile does its database work
                fresh = await asyncio.to_thread(timed(self.encoder.encode), [texts[i] for i in step])
            metrics.EMBED_TEXTS.labels("chunk").inc(len(step))
            for i, vec in zip(step, fresh, strict=True):
                out[i] = vec
        for i, j in repeats:
            out[i] = out[j]
        seen.update((texts[i], v) for i in missing if (v := out[i]) is not None)
        return [v for v in out if v is not None]

    async def _process(self, msgs: list[Any]) -> set[uuid.UUID]:
        """The documents left to the other batch in hand, which is encoding them (queued twice: a resumed import, the
        sweep): their messages come back after HELD_RETRY_S, when what is left of them (often nothing) is encoded."""
        wanted = list(dict.fromkeys(parse_embed_request(m.data) for m in msgs))
        doc_ids = [d for d in wanted if d not in self._in_hand]
        self._in_hand.update(doc_ids)
        try:
            await self._encode_documents(msgs, doc_ids)
        finally:
            self._in_hand.difference_update(doc_ids)
        return set(wanted) - set(doc_ids)

    async def _encode_documents(self, msgs: list[Any], doc_ids: list[uuid.UUID]) -> None:
        again = [m for m in msgs if bus.delivered(m) > 1]
        if again:
            # JetStream sends a batch again when its worker died (or nak'ed) before acknowledging it.
            log.warning("embedding a redelivered batch", extra={"redelivered": len(again), "deliveries": max(map(bus.delivered, again)),
                                                                 "documents": len(doc_ids)})
        rows, later = take_turn(await self.store.pending(doc_ids), self.rt.settings.embed.turn_chunks)
        left = Counter(doc for *_, doc in rows)
        finished: set[uuid.UUID] = set()
        step = self.rt.settings.embed.worker_batch
        seen: dict[str, np.ndarray] = {}  # this turn's texts, each encoded once
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            vectors = await self.encode([chunk_input(c, t) for _, c, t, _ in part], seen)
            # the writes and the related-document links are PostgreSQL's CPU: they wait for people as the encoding does
            await self.rt.foreground.yield_to_people("embed", self.yield_limits)
            await self.store.write_vectors([(cid, v) for (cid, *_), v in zip(part, vectors, strict=True)])
            left.subtract(doc for *_, doc in part)
            # A small document done in an early step of the turn is searchable now, not when the turn ends.
            done = [doc for doc in dict.fromkeys(doc for *_, doc in part) if left[doc] == 0 and doc not in later]
            await self._finished(done, len(part))
            finished.update(done)
            for m in msgs:  # long documents: keep the messages ours
                with contextlib.suppress(nats.errors.Error):
                    await m.in_progress()
        if later:  # the rest of a large document: to the back of the queue (a failed publish: the batch is redelivered)
            self._in_hand.difference_update(later)  # its next message is for whichever batch takes it
            await self.store.touch(later)
            await self._queue(later)
            metrics.EMBED_REQUEUED.inc(len(later))
        rest = [doc for doc in doc_ids if doc not in finished]
        if rest:  # documents with nothing left to encode (a redelivery, no chunks), and the rest of a large one
            await self._finished(rest, 0)

    async def _finished(self, doc_ids: list[uuid.UUID], written: int) -> None:
        """Link the complete documents and tell ingest which are done (it marks them, queues their enrichment and
        announces the new index generation)."""
        done = await self.store.finish(doc_ids, self.rt.settings.search.related_threshold) if doc_ids else []
        if done or written:
            await self.rt.nats.publish(VECTORS_SUBJECT, VectorsWritten(written, tuple(done)).as_bytes(), headers=bus.message_headers())

    async def _queue(self, doc_ids: list[uuid.UUID]) -> None:
        """Put documents (back) on the embedding queue: their chunks still without a vector are encoded later."""
        js = self.rt.nats.jetstream()
        for doc_id in doc_ids:
            await js.publish(EMBED_SUBJECT, embed_request(doc_id), timeout=2.0, headers=bus.message_headers())

    async def sweep(self) -> None:
        """Re-queue chunks whose queue message was lost (published after a commit that NATS never saw)."""
        await self._queue(await self.store.requeue_stale(self.rt.settings.embed.sweep_age_s))


Row = tuple[Any, str, str, uuid.UUID]


def take_turn(rows: list[Row], budget: int) -> tuple[list[Row], list[uuid.UUID]]:
    """The chunks to encode now, and the documents to queue again for the rest.

    ``rows`` are (chunk id, context, text, document id) in document order. Documents with the fewest waiting chunks go
    first and whole, while they fit in ``budget``; the next one gets what is left of it (a document larger than the
    budget gets the whole budget when it comes first). Whatever does not fit waits for a later turn, behind the
    documents queued in the meantime."""
    by_doc: dict[uuid.UUID, list[Row]] = {}
    for row in rows:
        by_doc.setdefault(row[3], []).append(row)
    now: list[Row] = []
    later: list[uuid.UUID] = []
    for doc_id, chunks in sorted(by_doc.items(), key=lambda item: len(item[1])):
        room = budget - len(now)
        if room <= 0:
            later.append(doc_id)
            continue
        now.extend(chunks[:room])
        if len(chunks) > room:
            later.append(doc_id)
    return now, later


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    path = Path(settings.embed.model_path) if settings.embed.model_path else default_model_dir()
    device, batch_size = "cpu", 64
    if settings.embed.device != "cpu":
        gpu = GpuLeases(settings, rt.channels, SERVICE, rt.instance_id)
        rt.host.on_close(gpu.close)
        lease = await gpu.acquire(Priority.PRIORITY_QUERY_EMBEDDING, model_bytes(path) + EMBED_WORKSPACE)
        device, batch_size = device_for_lease(settings.embed.device, lease.device, lease.bytes - model_bytes(path))
    onnx = await asyncio.to_thread(query_encoder.export_dir, query_encoder.cache_dir(settings.search.encoder_cache), path) \
        if device == "cpu" else None
    encoder = await asyncio.to_thread(Encoder, settings.embed.model, path, device, batch_size, onnx, settings.embed.runtime,
                                      settings.core.cpu_cores)
    if device == "cpu" and settings.embed.runtime != "torch" and encoder.runtime == "torch":
        log.info("no ONNX export of the model: embedding on torch (slower to start)", extra={"export": str(onnx)})

    async def model_ready() -> str:
        return f"{encoder.model_id} ({encoder.dim}-d) on {encoder.device}, {encoder.runtime}"

    async def index_model() -> str:
        other = await EmbedStore(rt.db, encoder.model_id).other_model()
        if other:
            raise RuntimeError(f"stored vectors come from {other!r} but TESSERA_EMBED_MODEL is {encoder.model_id!r}; "
                               "they are never mixed: re-embed or configure the stored model")
        return f"index vectors are {encoder.model_id}"

    rt.host.add_dependency("model", model_ready)
    rt.host.add_dependency("index_model", index_model)
    batcher = MicroBatcher(timed(encoder.encode), settings.embed.batch_max, settings.embed.batch_wait_ms / 1000)
    batcher.start()
    rt.host.on_close(batcher.stop)
    handlers = EmbedHandlers(rt, encoder, batcher)
    rt.host.add_service(embed_pb2, embed_pb2_grpc, "EmbedService", Embed=handlers.Embed, GetModel=handlers.GetModel)
    await bus.ensure_stream(rt.nats.jetstream(), EMBED_STREAM)

    async def queue_metrics() -> None:
        info = await rt.nats.jetstream().consumer_info(str(EMBED_STREAM.name), DURABLE)
        metrics.EMBED_PENDING.set(info.num_pending or 0)
        metrics.EMBED_ACK_PENDING.set(info.num_ack_pending or 0)

    metrics.on_scrape(queue_metrics)
    conflict = await EmbedStore(rt.db, encoder.model_id).other_model()
    if conflict:
        log.error("model mismatch: background embedding is off", extra={"stored": conflict, "configured": encoder.model_id})
        return
    worker = Worker(rt, encoder)
    await rt.foreground.listen()
    rt.host.on_close(rt.foreground.close)
    # The batch in hand is finished and acknowledged at shutdown; an unfinished one is redelivered to another worker.
    for i in range(PIPELINE):
        rt.host.spawn(worker.queue.run(worker.handle, rt.host.stopping), name=f"embed worker {i}")
    rt.host.every(settings.embed.sweep_interval_s, worker.sweep, name="embed sweep")


def run() -> None:
    main(SERVICE, NEEDS, setup)
