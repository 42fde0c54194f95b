"""Enrichment: a document's type, title, summary, tags and entities, through the configured chat backend.

Embed queues a document on TESSERA_ENRICH once all its chunks have vectors; the enrichers of every chat instance
share one durable pull consumer. Each document waits for an idle model slot (an answer someone is waiting for
always goes first: an enrichment in progress is cancelled and retried when a question queues) and for a lease
of the GPU scheduler's background class. The model must answer JSON of :data:`SCHEMA` (a grammar locally,
``response_format`` remotely); output that is not valid JSON or names an unknown type is asked for once more,
then the document is stored "unenriched" with the reason. The user's frontmatter is never overwritten: the
fields it sets (``documents.user_fields``) keep their values. Search never waits for any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from nats.js.api import AckPolicy, ConsumerConfig
from psycopg.types.json import Jsonb

from services.chat.loading import Generator
from services.chat.model import ChatTemplate, Sampling
from services.chat.slots import SlotPool
from shared.contracts import ENRICH_STREAM, ENRICH_SUBJECT, INDEX_SUBJECT, KINDS, bump_generation, embed_request, enrich_enabled, parse_embed_request
from shared.errors import InvalidArgument, NotFound
from shared.gen.tessera.v1 import chat_pb2, common_pb2
from shared.runtime import bus, metrics
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


class Enricher:
    def __init__(self, rt: Runtime, template: ChatTemplate, pool: SlotPool[Generator]) -> None:
        self.rt, self.template, self.pool = rt, template, pool
        self.settings = rt.settings
        self.gpu = GpuLeases(rt.settings, rt.channels, "chat-enrich", rt.instance_id)
        self.stopping = asyncio.Event()

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
            # only an idle slot, never ahead of a question (the pool has no event for "idle": its counters are polled)
            while self.pool.busy >= self.pool.size or self.pool.waiting:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        model = await self.pool.acquire()
        cancel = threading.Event()
        parts: list[str] = []

        def emit(text: str) -> bool:
            parts.append(text)
            return True

        async def yield_to_questions() -> None:
            while not cancel.is_set():
                if self.pool.waiting:
                    cancel.set()
                await asyncio.sleep(0.05)

        watch = asyncio.create_task(yield_to_questions()) if background else None
        sampling = Sampling(max_tokens=MAX_TOKENS, temperature=0.0 if seed == 0 else 0.4, seed=seed)
        gen = asyncio.ensure_future(asyncio.to_thread(model.generate, prompt, msgs, sampling, [], cancel, emit, SCHEMA))
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
                return parse_output(out, f"{title}\n{text}"), "", False
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
        async with self.rt.db.connection() as conn:
            row = await (await conn.execute(
                "SELECT d.project, d.title, d.content_hash, d.user_fields, d.enrich_state,"
                " (SELECT string_agg(c.text, E'\\n' ORDER BY c.ord) FROM (SELECT text, ord FROM chunks WHERE document_id = d.id"
                "  ORDER BY ord LIMIT 12) c) FROM documents d WHERE d.id = %s", (doc_id,))).fetchone()
        if row is None:
            return None
        return {"project": row[0], "title": row[1], "content_hash": row[2], "user_fields": list(row[3]), "state": row[4], "text": row[5] or ""}

    async def _store(self, doc_id: uuid.UUID, content_hash: str, r: Result) -> None:
        """The result, where the document is still the one that was read; the user's own fields keep their values."""
        async with self.rt.db.connection() as conn, conn.transaction():
            changed = (await conn.execute(
                "UPDATE documents SET kind = CASE WHEN 'type' = ANY(user_fields) AND kind <> '' THEN kind ELSE %s END,"
                " title = CASE WHEN 'title' = ANY(user_fields) OR %s = '' THEN title ELSE %s END, summary = %s, auto_tags = %s,"
                " entities = %s, enrich_state = 'enriched', enrich_reason = '', enrich_hash = content_hash"
                " WHERE id = %s AND content_hash = %s",
                (r.kind, r.title, r.title, r.summary, r.tags, Jsonb(r.entities), doc_id, content_hash))).rowcount
            generation = await bump_generation(conn) if changed else 0
        if generation:
            await bus.publish_event(self.rt.nats, INDEX_SUBJECT, {"generation": generation, "enriched": str(doc_id)})

    async def _set_state(self, doc_id: uuid.UUID, content_hash: str, state: str, reason: str) -> None:
        async with self.rt.db.connection() as conn:
            await conn.execute("UPDATE documents SET enrich_state = %s, enrich_reason = %s, enrich_hash = content_hash"
                               " WHERE id = %s AND content_hash = %s", (state, reason, doc_id, content_hash))

    # -- the queue ------------------------------------------------------------------------------------------------
    async def run(self) -> None:
        js = self.rt.nats.jetstream()
        await bus.ensure_stream(js, ENRICH_STREAM)
        sub = await js.pull_subscribe(ENRICH_SUBJECT, durable=DURABLE, stream=ENRICH_STREAM.name,
                                      config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=120, max_ack_pending=64))
        try:
            while not self.stopping.is_set():
                try:
                    msgs = await sub.fetch(batch=1, timeout=1.0)
                except TimeoutError:
                    continue
                except Exception as exc:  # noqa: BLE001 — NATS hiccup: try again
                    log.warning("enrich fetch failed", extra={"error": str(exc)})
                    await asyncio.sleep(1.0)
                    continue
                for m in msgs:
                    await self._handle(m)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _handle(self, m: Any) -> None:
        try:
            doc_id = parse_embed_request(m.data)
        except (ValueError, KeyError):
            await m.term()
            return
        try:
            state = await self._state(doc_id)
            if state != "pending":  # gone, done, or off: nothing to do
                await m.ack()
                return
            out = await self.document(doc_id)
        except (NotFound, InvalidArgument):
            await m.ack()
            return
        except Exception:
            log.exception("enrichment failed; it will be retried", extra={"document": str(doc_id)})
            with contextlib.suppress(Exception):
                await m.nak(delay=10)
            return
        if out is None:  # a question came first: later
            await m.nak(delay=2)
        else:
            await m.ack()

    async def _state(self, doc_id: uuid.UUID) -> str:
        async with self.rt.db.connection() as conn:
            row = await (await conn.execute("SELECT enrich_state FROM documents WHERE id = %s AND embedded", (doc_id,))).fetchone()
        return str(row[0]) if row else ""

    async def sweep(self) -> None:
        """Queue again embedded documents still pending after a while (their message was lost, or NATS was away)."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=SWEEP_S)
                return
            try:
                async with self.rt.db.connection() as conn:
                    rows = await (await conn.execute(
                        "SELECT id FROM documents WHERE enrich_state = 'pending' AND embedded"
                        " AND updated_at < now() - make_interval(secs => %s) ORDER BY updated_at LIMIT 200", (SWEEP_AGE_S,))).fetchall()
                js = self.rt.nats.jetstream()
                info = await js.consumer_info(str(ENRICH_STREAM.name), DURABLE)
                if (info.num_pending or 0) + (info.num_ack_pending or 0) == 0:  # only when the queue is empty: no pile-up
                    for (doc_id,) in rows:
                        await js.publish(ENRICH_SUBJECT, embed_request(doc_id))
            except Exception as exc:  # noqa: BLE001 — the database or NATS may be restarting; the next sweep tries again
                log.debug("enrich sweep skipped: %s", exc)


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
