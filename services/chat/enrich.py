"""Enrichment: a document's type, title, summary, tags and entities, through the configured chat backend.

Ingest queues a document on TESSERA_ENRICH once embed has written all its vectors; the enrichers of every chat instance
share one durable pull consumer. Each document waits until every model slot is idle (an answer someone is waiting for
always goes first: an enrichment in progress is cancelled and retried when a question takes another slot or queues,
so an answer never shares the CPU with background work; see :func:`background_may_start`) and for a lease
of the GPU scheduler's background class. The model must answer JSON of :data:`SCHEMA` (a grammar locally,
``response_format`` remotely); output that is not valid JSON or names an unknown type is asked for once more,
then the document is stored "unenriched" with the reason. Ingest owns documents, so it stores the result
(SetEnrichment); the user's frontmatter is never overwritten: the fields it sets (``documents.user_fields``)
keep their values. Search never waits for any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
import nats.errors

from services.chat.kinds import settle
from services.chat.loading import Generator
from services.chat.model import ChatTemplate, Sampling
from services.chat.slots import SlotPool
from services.chat.store import ChatStore
from shared.contracts import ENRICH_STREAM, ENRICH_SUBJECT, KINDS, embed_request, enrich_enabled, parse_embed_request
from shared.errors import InvalidArgument, NotFound
from shared.gen.tessera.v1 import chat_pb2, common_pb2, ingest_pb2, ingest_pb2_grpc
from shared.runtime import bus, metrics
from shared.runtime.db import application_name
from shared.runtime.gpu import GpuLeases, Priority
from shared.runtime.service import Runtime

log = logging.getLogger("tessera.chat.enrich")
DURABLE = "enrichers"
ENTITY_KINDS = ("technology", "project", "person")
MAX_TAGS = 5
MAX_ENTITIES = 6
#: Tokens an enrichment may generate. The schema bounds every string and list (the grammar enforces it), so the
#: whole object fits (at most about 900 characters), even a token per character.
MAX_TOKENS = 900
#: How often a background enrichment looks for a question to yield to (its step then stops part-way).
YIELD_POLL_S = 0.01
#: Enrichment, the lowest priority in the mesh, waits for as long as people chat or search and embedding has work.
PEOPLE: dict[str, float | None] = {"chat": None, "search": None, "embed": None}
#: How often an enricher looks for documents whose queue message was lost, and how old they must be.
SWEEP_S, SWEEP_AGE_S = 20.0, 30.0
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": list(KINDS)},
        "title": {"type": "string", "minLength": 1, "maxLength": 80},
        "summary": {"type": "string", "minLength": 1, "maxLength": 360},
        "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 24}, "maxItems": MAX_TAGS},
        "entities": {"type": "array", "maxItems": MAX_ENTITIES, "items": {
            "type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 40},
                                             "kind": {"type": "string", "enum": list(ENTITY_KINDS)}},
            "required": ["name", "kind"]}},
    },
    "required": ["type", "title", "summary", "tags", "entities"],
}
SYSTEM = (
    "You file notes in a personal knowledge base. Read the note and answer with one JSON object:\n"
    '- "type", exactly one of:\n'
    "  snippet: the note is mainly code, a shell command or a query, kept to reuse;\n"
    "  reference: facts to look up: documentation, a specification, a table, a summary of a paper;\n"
    "  decision: a choice that was made, with its reasons;\n"
    "  bug: a defect, an error or an incident, with its cause or fix;\n"
    "  insight: otherwise: a lesson, an idea or an observation of the writer's own;\n"
    '- "title": a short title (at most 8 words);\n'
    '- "summary": one paragraph of one to three sentences;\n'
    '- "tags": up to 5 lowercase keywords;\n'
    '- "entities": the technologies, projects and people the note names, each {"name", "kind"} with kind technology, project or person.'
)


class BadOutput(ValueError):
    """The model's answer is not an enrichment; the message says why."""


@dataclass
class Result:
    kind: str
    title: str
    summary: str
    tags: list[str]
    entities: list[dict[str, str]] = field(default_factory=list)

    def proto(self, state: str = "enriched", reason: str = "") -> common_pb2.Enrichment:
        return common_pb2.Enrichment(kind=self.kind, title=self.title, summary=self.summary, tags=self.tags, state=state, reason=reason,
                                     entities=[common_pb2.Entity(name=e["name"], kind=e["kind"]) for e in self.entities])


def messages(title: str, text: str, max_chars: int) -> list[dict[str, str]]:
    body = text if len(text) <= max_chars else text[:max_chars].rsplit(" ", 1)[0] + " …"
    head = f"Title: {title}\n\n" if title else ""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{head}Note:\n{body}"}]


def _tag(value: str) -> str:
    return re.sub(r"[^\w\-.+#]+", "-", value.strip().lower()).strip("-")[:30]


def parse_output(text: str, source: str = "") -> Result:
    """The model's JSON as a Result; BadOutput with the reason when it is not one. With ``source`` (the note), an entity
    the note never names is dropped: small models invent some."""
    try:
        # strict=False: a raw tab or newline inside a string (the grammar of llama-cpp-python's schema converter lets
        # them through) is harmless here: every string is whitespace-folded below.
        data = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        raise BadOutput(f"the model's answer is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, dict):
        raise BadOutput("the model's answer is not a JSON object")
    kind = str(data.get("type", "")).strip().lower()
    if kind not in KINDS:
        raise BadOutput(f"the model gave the unknown type {kind!r} (known: {', '.join(KINDS)})")
    tags = list(dict.fromkeys(t for t in (_tag(str(v)) for v in data.get("tags") or [] if isinstance(v, str | int)) if t))[:MAX_TAGS]
    entities: list[dict[str, str]] = []
    for e in data.get("entities") or []:  # names folded like the other strings
        if isinstance(e, dict) and isinstance(e.get("name"), str):
            e = {**e, "name": " ".join(e["name"].split())}
        if isinstance(e, dict) and str(e.get("name", "")).strip() and str(e.get("kind", "")).lower() in ENTITY_KINDS:
            name = str(e["name"]).strip()[:60]
            if source and name.lower() not in source.lower():
                continue
            if name.lower() not in {x["name"].lower() for x in entities}:
                entities.append({"name": name, "kind": str(e["kind"]).lower()})
    return Result(kind, " ".join(str(data.get("title", "")).split())[:100], " ".join(str(data.get("summary", "")).split())[:600], tags,
                  entities[:MAX_ENTITIES])


def background_may_start(busy: int, waiting: int) -> bool:
    """Background enrichment starts only on an idle model: with a question on one slot, a second generation on the
    other would halve the CPU its prefill gets (slots share the cores; chaos measured a 536-token prefill at 4.4 s)."""
    return busy == 0 and waiting == 0


def background_must_yield(busy: int, waiting: int) -> bool:
    """A background generation (holding one slot) stops for a question that waits or that took another slot."""
    return waiting > 0 or busy > 1


class Enricher:
    def __init__(self, rt: Runtime, template: ChatTemplate, pool: SlotPool[Generator]) -> None:
        self.rt, self.template, self.pool = rt, template, pool
        self.settings = rt.settings
        self.gpu = GpuLeases(rt.settings, rt.channels, "chat-enrich", rt.instance_id)

    @functools.cached_property
    def store(self) -> ChatStore:
        return ChatStore(self.rt.db, application_name(self.rt.instance_id))

    @functools.cached_property
    def queue(self) -> bus.WorkQueue:
        return bus.WorkQueue(self.rt.nats, ENRICH_STREAM, ENRICH_SUBJECT, DURABLE, ack_wait_s=120, max_ack_pending=64, batch=1)

    # -- the model ----------------------------------------------------------------------------------------------
    async def _prompt(self, title: str, text: str) -> tuple[list[dict[str, str]], list[int]]:
        """The messages and their tokens, the note cut until they leave MAX_TOKENS of the model's context."""
        max_chars = self.settings.knowledge.enrich_max_chars
        while True:
            msgs = messages(title, text, max_chars)
            prompt = await asyncio.to_thread(self.template.tokenize_messages, msgs)  # the note as text, never control tokens
            if len(prompt) + MAX_TOKENS <= self.settings.chat.context or max_chars < 200:
                return msgs, prompt
            max_chars = int(max_chars * 0.6)

    async def _generate_once(self, msgs: list[dict[str, str]], prompt: list[int], seed: int, background: bool) -> tuple[str, bool]:
        """(text, preempted): one generation on a free slot; in the background it yields to a waiting question."""
        if background:
            # only an idle model, never beside a question (the pool has no event for "idle": its counters are polled),
            # and not while people chat or search anywhere in the mesh
            while not background_may_start(self.pool.busy, self.pool.waiting) or self.rt.foreground.busy(PEOPLE):
                await self.rt.foreground.yield_to_people("enrich", PEOPLE)
                await asyncio.sleep(0.2)
        model = await self.pool.acquire()
        cancel = threading.Event()
        parts: list[str] = []

        def emit(text: str) -> bool:
            parts.append(text)
            return True

        async def yield_to_questions() -> None:
            while not cancel.is_set():
                if background_must_yield(self.pool.busy, self.pool.waiting) or self.rt.foreground.busy(PEOPLE):
                    metrics.BACKGROUND_YIELDS.labels("enrich", "preempted").inc()
                    cancel.set()
                await asyncio.sleep(YIELD_POLL_S)

        watch = asyncio.create_task(yield_to_questions()) if background else None
        sampling = Sampling(max_tokens=MAX_TOKENS, temperature=0.0 if seed == 0 else 0.4, seed=seed)
        # in the background a step stops part-way once cancelled (ChatModel._aborted_by): a question's first token does
        # not wait for the rest of an enrichment's 64-token prompt step
        gen = asyncio.ensure_future(asyncio.to_thread(model.generate, prompt, msgs, sampling, [], cancel, emit, SCHEMA,
                                                      abortable=background))
        gen.add_done_callback(lambda _: self.pool.release(model))  # the slot goes back when the model thread has stopped
        try:
            finish, _ = await asyncio.shield(gen)
        finally:
            preempted = cancel.is_set()
            cancel.set()  # a caller that went away (deadline, cancel) stops the generation within a token
            if watch is not None:
                watch.cancel()
        return "".join(parts), preempted and finish == "cancelled"

    async def enrich_text(self, title: str, text: str, background: bool = False) -> tuple[Result | None, str, bool]:
        """(result, reason it failed, preempted): bad output is asked for once more, then given up with the reason."""
        msgs, prompt = await self._prompt(title, text)
        if len(prompt) + MAX_TOKENS > self.settings.chat.context:
            return None, (f"the chat context ({self.settings.chat.context} tokens, TESSERA_CHAT_CONTEXT) cannot hold the enrichment prompt "
                          f"and its {MAX_TOKENS}-token answer"), False
        reason = ""
        for attempt in range(2):
            out, preempted = await self._generate_once(msgs, prompt, seed=attempt, background=background)
            if preempted:
                return None, "", True
            try:
                result = parse_output(out, f"{title}\n{text}")
                result.kind = settle(result.kind, text)  # the note's form decides where it speaks (kinds.py)
                return result, "", False
            except BadOutput as exc:
                reason = str(exc)
                log.info("enrichment: bad model output (attempt %d): %s", attempt + 1, reason)
        return None, reason, False

    # -- one document ---------------------------------------------------------------------------------------------
    async def document(self, doc_id: uuid.UUID, background: bool = True) -> common_pb2.Enrichment | None:
        """Enrich a stored document and store the result; None when it was pre-empted (try later)."""
        row = await self._row(doc_id)
        if row is None:
            raise NotFound(f"chat: no document {doc_id}")
        if not enrich_enabled(self.settings.knowledge.enrich, row["project"]):
            await self._set_state(doc_id, row["content_hash"], "off", "")
            return common_pb2.Enrichment(state="off", reason=f"enrichment is off for project {row['project']!r} (TESSERA_ENRICH)")
        title = row["title"] if "title" in row["user_fields"] else ""
        lease = await self.gpu.acquire(Priority.PRIORITY_BACKGROUND_EMBEDDING, 64 << 20, max_wait_ms=30_000, keep=False)
        try:
            result, reason, preempted = await self.enrich_text(title, row["text"], background=background)
        finally:
            await self.gpu.release(lease)
        if preempted:
            return None
        if result is None:
            await self._set_state(doc_id, row["content_hash"], "unenriched", reason)
            metrics.CHAT_ENRICHED.labels("unenriched").inc()
            return common_pb2.Enrichment(state="unenriched", reason=reason)
        await self._store(doc_id, row["content_hash"], result)
        metrics.CHAT_ENRICHED.labels("enriched").inc()
        return result.proto()

    async def _row(self, doc_id: uuid.UUID) -> dict[str, Any] | None:
        return await self.store.enrich_source(doc_id)

    async def _store(self, doc_id: uuid.UUID, content_hash: str, r: Result) -> None:
        """The result, stored by ingest (it owns documents) where the document is still the one that was read."""
        await self._send(doc_id, content_hash, r.proto())

    async def _set_state(self, doc_id: uuid.UUID, content_hash: str, state: str, reason: str) -> None:
        await self._send(doc_id, content_hash, common_pb2.Enrichment(state=state, reason=reason))

    async def _send(self, doc_id: uuid.UUID, content_hash: str, enrichment: common_pb2.Enrichment) -> None:
        stub = await self.rt.channels.stub("ingest", ingest_pb2_grpc.IngestServiceStub)
        await stub.SetEnrichment(ingest_pb2.SetEnrichmentRequest(document_id=str(doc_id), content_hash=content_hash,
                                                                 enrichment=enrichment))

    # -- the queue ------------------------------------------------------------------------------------------------
    async def handle(self, msgs: list[Any]) -> None:
        """One queued document (the work queue fetches one at a time): enriched, or left for later."""
        for m in msgs:
            await self._handle(m)

    async def _handle(self, m: Any) -> None:
        try:
            doc_id = parse_embed_request(m.data)
        except (ValueError, KeyError):
            await m.term()
            return
        try:
            state = await self.store.enrich_state(doc_id)
            if state != "pending":  # gone, done, or off: nothing to do
                await m.ack()
                return
            out = await self.document(doc_id)
        except (NotFound, InvalidArgument):
            await m.ack()
            return
        except Exception:  # boundary: one document's enrichment; logged and retried later, the queue goes on
            log.exception("enrichment failed; it will be retried", extra={"document": str(doc_id)})
            with contextlib.suppress(nats.errors.Error):
                await m.nak(delay=10)
            return
        if out is None:  # a question came first: later
            await m.nak(delay=2)
        else:
            await m.ack()

    async def sweep(self) -> None:
        """Queue again embedded documents still pending after a while (their message was lost, or NATS was away);
        only when the queue is empty, so nothing piles up."""
        rows = await self.store.pending_enrichment(SWEEP_AGE_S)
        if rows and await self.queue.pending() == 0:
            js = self.rt.nats.jetstream()
            for doc_id in rows:
                await js.publish(ENRICH_SUBJECT, embed_request(doc_id))


async def enrich_rpc(enricher: Enricher, request: chat_pb2.EnrichRequest, context: grpc.aio.ServicerContext) -> common_pb2.Enrichment:
    """The Enrich RPC: a stored document (the result is stored too) or a given text (nothing is stored)."""
    if bool(request.document_id) == bool(request.text.strip()):
        raise InvalidArgument("chat: give exactly one of document_id or text")
    if "\x00" in request.text or "\x00" in request.title:
        raise InvalidArgument("chat: text or title contains a NUL character")
    if len(request.text) > 512_000:
        raise InvalidArgument(f"chat: text is {len(request.text)} characters; the limit is 512000")
    enricher.pool.check()
    if request.document_id:
        try:
            doc_id = uuid.UUID(request.document_id)
        except ValueError:
            raise InvalidArgument(f"chat: {request.document_id!r} is not a document id") from None
        out = await enricher.document(doc_id, background=False)
        assert out is not None  # not in the background: never pre-empted
        return out
    result, reason, _ = await enricher.enrich_text(request.title, request.text)
    return result.proto() if result is not None else common_pb2.Enrichment(state="unenriched", reason=reason)
