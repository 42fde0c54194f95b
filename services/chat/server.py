"""Wires the chat service to gRPC, search (retrieval), PostgreSQL (conversations) and the model slots.

One answer: validate → load the conversation → retrieve (search service, then
the chunks' full text from PostgreSQL) → build a prompt that fits the context →
wait in line for a model slot → generate in a worker thread, token by token,
through a bounded pipe → filter citations → stream ChatEvents → store the turn.
A reader that cancels or disconnects sets the cancel flag the model thread looks
at between tokens; the slot returns to the pool when that thread has stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import nats.errors
from opentelemetry import context as otel_context

from services.chat import check, grounding, research, runtime
from services.chat.answer import AnswerRun, Prepared, Research, store_question
from services.chat.conversations import Conversations
from services.chat.convert import citation
from services.chat.enrich import SWEEP_S as ENRICH_SWEEP_S
from services.chat.enrich import Enricher, enrich_rpc
from services.chat.loading import Generator, load_local, load_remote, run_selftest
from services.chat.model import ChatModel, ChatTemplate
from services.chat.profiles import model_path
from services.chat.prompt import STOP_RAG, Source, Turn, build_prompt, messages_for
from services.chat.request import parse_request
from services.chat.slots import QueueFull, SlotPool, in_model_thread
from services.chat.store import ChatStore
from shared.contracts import DOCUMENT_DELETED_SUBJECT, FINISH_ABSTAINED, PURPOSE_USER, QUESTION_SUBJECT, UnansweredQuestion
from shared.conversions import maybe_id
from shared.errors import ConfigError, InvalidArgument, NotFound, ResourceExhausted, Unavailable
from shared.gen.tessera.v1 import chat_pb2, chat_pb2_grpc, common_pb2, ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from shared.quic import QuicServer, StreamRefused
from shared.runtime import bus, metrics, principal, tracing
from shared.runtime.db import application_name
from shared.runtime.logs import request_id
from shared.runtime.service import Runtime, main, quic_port

SERVICE = "chat"
NEEDS = ("postgres", "nats")
log = logging.getLogger("tessera.chat")
#: How often each instance marks as failed the answers of chat processes that died while generating.
SWEEP_S = 15.0


class Chat:
    def __init__(self, rt: Runtime, template: ChatTemplate, pool: SlotPool[Generator], model_path: Path, quic: QuicServer,
                 profile: str, model_name: str, selftest_line: str) -> None:
        self.rt = rt
        self.quic = quic
        self.settings = rt.settings
        self.template = template
        self.pool = pool
        self.model_path = model_path
        self.model_name = model_name
        self.profile = profile
        self.selftest_line = selftest_line
        self.store = ChatStore(rt.db, application_name(rt.instance_id))
        floor = self.settings.chat.check_floor
        self.check_floor = check.FLOORS.get(profile, 0.0) if floor < 0 else floor
        self.yes, self.no = check.answer_tokens(lambda w: template.tokenize(w, special=False))

    # -- preparation ---------------------------------------------------------

    async def _conversation(self, conversation_id: str) -> list[Turn]:
        if maybe_id(conversation_id) is None:
            raise NotFound(f"chat: {conversation_id!r} is not a conversation id")
        history = await self.store.history(conversation_id)
        if history is None:
            raise NotFound(f"chat: no conversation {conversation_id}")
        return [Turn(role, content) for role, content in history]

    async def _retrieve(self, question: str, top_k: int, filters: common_pb2.Filters) -> list[Source]:
        stub = await self.rt.channels.stub("search", search_pb2_grpc.SearchServiceStub)
        reply = await stub.Search(search_pb2.SearchRequest(query=question, top_k=top_k, filters=filters,
                                                           mode=search_pb2.SEARCH_MODE_HYBRID), timeout=self.settings.chat.retrieval_timeout_s)
        if not reply.hits:
            return []
        chunks = await self.store.chunk_texts([h.source.chunk_id for h in reply.hits])
        out: list[Source] = []
        for h in reply.hits:
            s = h.source
            row = chunks.get(s.chunk_id)
            if row is not None:  # a chunk deleted since the search is left out
                # The whole chunk goes into the prompt, so the citation spans the chunk's lines (search's span the snippet).
                cosine = next((sig.score for sig in h.signals if sig.name == "vector" and sig.rank), 0.0)
                out.append(Source(number=len(out) + 1, chunk_id=s.chunk_id, document_id=s.document_id, title=s.title, path=s.path,
                                  line_start=int(row["line_start"]), line_end=int(row["line_end"]), text=str(row["text"]),
                                  score=h.score, char_start=s.char_start, char_end=s.char_end, heading_path=tuple(s.heading_path),
                                  relevance=cosine))
        return out

    async def prepare(self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> Prepared:
        question, turns, system_extra, sampling = parse_request(request, self.settings.chat.max_tokens)
        if request.model and request.model not in (self.model_name, self.model_path.name, self.profile):
            raise NotFound(f"chat: no model {request.model!r}; this server runs {self.model_name!r}")
        self.pool.check()  # QueueFull (RESOURCE_EXHAUSTED with retry-after) before any work
        stored = await self._conversation(request.conversation_id) if request.conversation_id else []
        started = time.monotonic()
        sources: list[Source] = []
        if request.rag:
            try:
                with tracing.span("retrieval", question_chars=len(question)):
                    sources = await self._retrieve(question, request.top_k_sources or self.settings.chat.sources, request.filters)
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:  # the question's filters, as search judged them: the caller's mistake
                    raise InvalidArgument(f"chat: {exc.details()}") from None
                raise Unavailable(f"chat: retrieval failed, search answered {exc.code().name}: {exc.details()}") from None
        retrieval_ms = (time.monotonic() - started) * 1000
        conversation_id = request.conversation_id or str(uuid.uuid4())
        base = Prepared(conversation_id=conversation_id, is_new=not request.conversation_id, question=question, title=question[:80],
                        plan_sources=[], prompt_tokens=[], messages=[], sampling=sampling, stop=list(request.stop),
                        retrieval_ms=retrieval_ms, trace=otel_context.get_current(), request_id=request_id.get(),
                        project=request.filters.project, purpose=request.purpose or PURPOSE_USER, history=[*stored, *turns],
                        system_extra=system_extra)
        if request.rag and request.mode == "research":  # the model plans its searches once it has a slot (research.py)
            return replace(base, research=Research(request.filters, sources))
        if request.rag:
            return await self.grounded(base, sources)
        return await self.compose(base, [])

    async def grounded(self, p: Prepared, sources: list[Source], checked: bool = True) -> Prepared:
        """The answer from the sources relevant enough (passages of them), or the fixed reply with the closest hits when
        none is: no slot, no generation. ``checked``: the model's check is to run before the answer (not after research:
        a question of several parts, half of which the sources hold, gets "no" and would lose the half it has)."""
        supported = grounding.supported(sources, self.settings.chat.relevance_floor)
        covered = check.coverage(p.question, supported) if supported else 0.0
        log.debug("grounding signals", extra={"cosine": round(max((s.relevance for s in sources), default=0.0), 4),
                                              "coverage": round(covered, 4), "question": p.question[:200]})
        if not supported or covered < self.settings.chat.coverage_floor:
            return self.abstaining(p, sources[:3])
        chunks = {s.chunk_id: s.text for s in supported}  # each source's whole chunk: the prompt holds passages of it
        out = replace(await self.compose(p, grounding.focused(supported, p.question, self.settings.chat.passage_chars)), chunks=chunks)
        if checked and self.check_floor > 0 and out.plan_sources and self.settings.chat.backend == "local":
            out = replace(out, check_tokens=await asyncio.to_thread(self.template.tokenize_messages, check.check_messages(out.messages)))
        return out

    @staticmethod
    def abstaining(p: Prepared, closest: list[Source]) -> Prepared:
        """The fixed reply with the closest hits: no generation."""
        return replace(p, plan_sources=closest, stop=[], check_tokens=[],
                       abstain=grounding.not_in_notes([(s.title, s.path, s.line_start, s.line_end) for s in closest]))

    async def compose(self, p: Prepared, sources: list[Source]) -> Prepared:
        """The prompt: the sources and history that fit the context beside the answer's tokens."""
        plan = await asyncio.to_thread(build_prompt, p.question, sources, p.history, render=self.template.render,
                                       count=self.template.count, context=self.settings.chat.context,
                                       max_tokens=p.sampling.max_tokens, system_extra=p.system_extra)
        history = p.history[len(p.history) - plan.history_used:] if plan.history_used else []
        messages = messages_for(p.question, plan.sources, history, p.system_extra)
        return replace(p, plan_sources=plan.sources, messages=messages, stop=p.stop + (list(STOP_RAG) if plan.sources else []),
                       prompt_tokens=await asyncio.to_thread(self.template.tokenize_messages, messages))

    # -- persistence ---------------------------------------------------------

    async def _store_question(self, p: Prepared, message_id: str) -> None:
        await store_question(self.store, p, message_id)

    async def _store_answer(self, p: Prepared, message_id: str, answer: str, cited: list[dict[str, Any]], finish: str, completion: int) -> None:
        await self.store.store_answer(p.conversation_id, message_id, answer, cited, finish, completion)

    # -- RPCs ----------------------------------------------------------------

    async def Chat(self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[chat_pb2.ChatEvent]:
        """The gRPC streaming path: the same ChatEvent frames as a StartChat ticket's QUIC stream."""
        started = time.monotonic()
        async with self.rt.foreground.answering():  # background work waits from the question's retrieval on
            p = await self.prepare(request, context)
        # Admitted: tell the caller now (the gateway answers 200 and starts its event stream on this).
        await context.send_initial_metadata((("x-conversation-id", p.conversation_id),))
        if p.abstain:
            async for event in self._abstain(p, started):
                yield event
            return
        with tracing.span("queue wait", parent=p.trace):
            model = await self.pool.acquire(prefer=lambda m: m.cached_prefix(p.prompt_tokens))
        async for event in self._respond(p, model, started):
            yield event

    async def StartChat(self, request: chat_pb2.ChatRequest, context: grpc.aio.ServicerContext) -> chat_pb2.StartChatResponse:
        """The QUIC path: validate and retrieve now (errors are this call's status), stream the answer to the ticket's holder."""
        started = time.monotonic()
        async with self.rt.foreground.answering():  # background work waits from the question's retrieval on
            p = await self.prepare(request, context)
        try:
            produce = (lambda: self._for_caller(p, self._abstain(p, started))) if p.abstain else \
                (lambda: self._for_caller(p, self._answer_queued(p, started)))
            ticket = self.quic.issue(chat_pb2.ChatEvent.DESCRIPTOR.full_name, produce)
        except StreamRefused as exc:
            raise ResourceExhausted(str(exc)) from None
        return chat_pb2.StartChatResponse(ticket=ticket, conversation_id=p.conversation_id)

    @staticmethod
    async def _for_caller(p: Prepared, events: AsyncIterator[chat_pb2.ChatEvent]) -> AsyncIterator[chat_pb2.ChatEvent]:
        """A ticket's answer runs in the QUIC stream's task: its log lines and spans keep the request's id, and its
        searches and stored turns act for the one who asked (row-level security)."""
        request_id.set(p.request_id)
        principal.current.set(p.principal)
        async for event in events:
            yield event

    async def _answer_queued(self, p: Prepared, started: float) -> AsyncIterator[chat_pb2.ChatEvent]:
        try:
            with tracing.span("queue wait", parent=p.trace):
                model = await self.pool.acquire(prefer=lambda m: m.cached_prefix(p.prompt_tokens))
        except QueueFull as exc:
            yield chat_pb2.ChatEvent(error=chat_pb2.ChatError(code="RESOURCE_EXHAUSTED", message=str(exc)))
            return
        async for event in self._respond(p, model, started):
            yield event

    async def _abstain(self, p: Prepared, started: float) -> AsyncIterator[chat_pb2.ChatEvent]:
        """The fixed "not in your notes" reply with the closest hits; stored like an answer."""
        message_id = str(uuid.uuid4())
        await self._store_question(p, message_id)
        yield chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text=p.abstain, index=0))
        await self._store_answer(p, message_id, p.abstain, [], FINISH_ABSTAINED, 0)
        try:  # a knowledge gap for the weekly review: search owns the query log, and hears it
            gap = UnansweredQuestion(p.question, p.project, max((s.relevance for s in p.plan_sources), default=0.0))
            await self.rt.nats.publish(QUESTION_SUBJECT, gap.as_bytes(), headers=bus.message_headers())
        except nats.errors.Error as exc:  # the answer is given either way
            log.warning("chat: the unanswered question was not logged: %s", exc)
        yield chat_pb2.ChatEvent(done=chat_pb2.ChatDone(
            finish_reason=FINISH_ABSTAINED, prompt_tokens=0, completion_tokens=0, conversation_id=p.conversation_id, message_id=message_id,
            duration_ms=(time.monotonic() - started) * 1000, retrieval_ms=p.retrieval_ms, sources=[citation(s) for s in p.plan_sources]))

    async def _respond(self, p: Prepared, model: Generator, started: float) -> AsyncIterator[chat_pb2.ChatEvent]:
        """Research first in research mode (its steps streamed), then the answer from what was found, or the fixed reply
        when nothing relevant enough was."""
        try:
            # Background work waits through research and the model's check too: the check's prefill is most of the
            # first token's wait (embedding beside it made the first token 1.7-1.9x slower during an import).
            async with self.rt.foreground.answering():
                if p.research is not None:
                    found = research.Findings([], [])
                    async for item in research.run(p, model, self._search, self.template.tokenize_messages,
                                                   limit=2 * self.settings.chat.sources, bound_s=self.settings.chat.research_s):
                        if isinstance(item, research.Findings):
                            found = item
                        else:
                            yield item
                    extra = "\n\n".join(x for x in (p.system_extra, found.instructions()) if x)
                    p = await self.grounded(replace(p, research=None, system_extra=extra), found.sources, checked=False)
                if not p.abstain and p.check_tokens and isinstance(model, ChatModel):
                    p = await self._checked(p, model)
        except BaseException:  # the reader left, or a step failed: the slot goes back (its model thread has stopped)
            self.pool.release(model)
            raise
        if p.abstain:
            self.pool.release(model)
            async for event in self._abstain(p, started):
                yield event
            return
        async for event in self._answer(p, model, started):
            yield event

    async def _checked(self, p: Prepared, model: ChatModel) -> Prepared:
        """The model's check on its slot (check.py): the fixed reply below the floor, else the answer's prepared turn
        with what the check's prefill cost (the answer finds that prompt in the KV cache)."""
        with tracing.span("answer check", parent=p.trace, prompt_tokens=len(p.check_tokens)):
            p_yes = await in_model_thread(lambda cancel: model.judge(p.check_tokens, self.yes, self.no, cancel))
        log.debug("grounding signals", extra={"p_yes": None if p_yes is None else round(p_yes, 4), "question": p.question[:200]})
        if p_yes is not None and p_yes < self.check_floor:
            return self.abstaining(p, p.plan_sources[:3])
        return replace(p, check_prefill=model.last_prefill)

    async def _search(self, query: str, filters: common_pb2.Filters) -> list[Source]:
        """A research step's search (a failed one finds nothing; the answer goes on with what the others found)."""
        try:
            return await self._retrieve(query, research.TOP_K, filters)
        except grpc.aio.AioRpcError as exc:
            log.warning("chat: a research search failed: %s %s", exc.code().name, exc.details())
            return []

    async def _answer(self, p: Prepared, model: Generator, started: float) -> AsyncIterator[chat_pb2.ChatEvent]:
        """Generate with ``model`` (a slot already taken) and turn tokens into ChatEvents; transport-free. Background
        work across the mesh (embedding, enrichment) waits while it runs."""
        run = AnswerRun(self.settings, self.store, self.pool, p, model, started)
        async with self.rt.foreground.answering():
            async for event in run.events():
                yield event
        if cited := run.cited_documents:
            self.rt.host.spawn(self._enrich_cited(cited, p), name="enrich cited documents")

    async def _enrich_cited(self, document_ids: list[str], p: Prepared) -> None:
        """What an answer cited is enriched first: a large import's deferred documents are queued (ingest owns them).
        Part of the answer's trace (this task runs outside the request's span)."""
        try:
            with tracing.span("enrich cited documents", parent=p.trace, documents=len(document_ids)):
                stub = await self.rt.channels.stub("ingest", ingest_pb2_grpc.IngestServiceStub)
                await stub.EnrichDeferred(ingest_pb2.EnrichDeferredRequest(document_ids=document_ids), timeout=10)
        except grpc.aio.AioRpcError as exc:  # the answer stands; the documents wait to be opened or asked for
            log.info("chat: cited documents not queued for enrichment: %s", exc.details())

    async def GetModel(self, request: chat_pb2.GetChatModelRequest, context: grpc.aio.ServicerContext) -> chat_pb2.ChatModelInfo:
        return chat_pb2.ChatModelInfo(name=self.model_name, path=str(self.model_path), context_tokens=self.settings.chat.context,
                                      slots=self.pool.size, queue_depth=self.pool.depth, busy=self.pool.busy, waiting=self.pool.waiting,
                                      profile=self.profile, backend=self.settings.chat.backend, selftest=self.selftest_line)


async def erase_deleted_notes(rt: Runtime, store: ChatStore) -> None:
    """A note ingest deleted leaves the citations of stored answers (one chat instance takes each announcement)."""
    async def deleted(msg: Any) -> None:
        try:
            document_id = str(maybe_id(json.loads(msg.data)["document_id"]) or "")
        except (ValueError, KeyError, TypeError):
            return  # not an announcement of ours
        if document_id and (changed := await store.erase_citations(document_id)):
            log.info("chat: a deleted note erased from the citations of %d answer(s)", changed)

    sub = await rt.nats.subscribe(DOCUMENT_DELETED_SUBJECT, queue="chat-erase", cb=deleted)

    async def stop() -> None:
        await sub.unsubscribe()

    rt.host.on_stop_accepting(stop)


async def sweep_failed(chat: Chat) -> None:
    """Mark as failed the answers of chat processes that died while generating."""
    if marked := await chat.store.sweep_failed():
        log.warning("chat: marked %d answer(s) failed: their chat process stopped while generating", marked)


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    try:
        build = runtime.select(settings.chat.cpu_build)  # before llama_cpp is first imported
    except RuntimeError as exc:
        raise ConfigError("TESSERA_CHAT_CPU_BUILD", str(exc)) from None
    log.info("chat: %s", build)
    profile, path = await asyncio.to_thread(model_path, settings.chat.model, settings.chat.model_path, settings.path("models"))
    template = await asyncio.to_thread(ChatTemplate, path)
    if settings.chat.backend == "openai":
        models, described = await load_remote(rt)
    else:
        models, described = await load_local(rt, path)
    line = await run_selftest(rt, models[0], template)
    pool: SlotPool[Generator] = SlotPool(models, settings.chat.queue_depth)
    quic = await QuicServer(settings, port=quic_port(settings.chat.quic_port)).start()
    rt.host.on_drain(quic.drain)  # answers in flight finish within the shutdown deadline
    rt.host.on_close(quic.close)
    name = models[0].name if settings.chat.backend == "openai" else path.stem
    chat = Chat(rt, template, pool, path, quic, profile, name, line)
    rt.extras["model"] = models[0]
    rt.host.every(SWEEP_S, lambda: sweep_failed(chat), name="failed answers sweep", first_s=0.0)

    async def pool_metrics() -> None:
        metrics.CHAT_QUEUE.set(pool.waiting)
        metrics.CHAT_BUSY.set(pool.busy)
        metrics.CHAT_SLOTS.set(pool.size)

    metrics.on_scrape(pool_metrics)

    async def model_ready() -> str:
        return f"{profile}: {described}; {build if settings.chat.backend == 'local' else 'remote backend'}"

    rt.host.add_dependency("model", model_ready)
    enricher = Enricher(rt, template, pool)

    async def enrich(request: chat_pb2.EnrichRequest, context: grpc.aio.ServicerContext) -> common_pb2.Enrichment:
        return await enrich_rpc(enricher, request, context)

    stored = Conversations(chat.store)
    rt.host.add_service(chat_pb2, chat_pb2_grpc, "ChatService", Chat=chat.Chat, GetConversation=stored.GetConversation,
                        ListConversations=stored.ListConversations, RenameConversation=stored.RenameConversation,
                        DeleteConversation=stored.DeleteConversation, GetModel=chat.GetModel, StartChat=chat.StartChat, Enrich=enrich)
    await rt.foreground.listen()
    rt.host.on_close(rt.foreground.close)
    await erase_deleted_notes(rt, chat.store)
    if settings.knowledge.enrich.strip().lower() not in ("off", "false", "0", "no", ""):
        # An enrichment in progress is finished at shutdown (or left unacknowledged, and redelivered).
        rt.host.spawn(enricher.queue.run(enricher.handle, rt.host.stopping), name="enricher", stop_within=5.0)
        rt.host.every(ENRICH_SWEEP_S, enricher.sweep, name="enrich sweep")
        rt.host.on_close(enricher.gpu.close)


def run() -> None:
    main(SERVICE, NEEDS, setup)
