"""One answer being generated: the model thread feeding a bounded token pipe, the citation filter, the ChatEvents
the caller reads, and the stored turn. Transport-free: gRPC streams and QUIC tickets both read ``events()``.

A reader that cancels or disconnects sets the cancel flag the model thread looks at between tokens; the slot
returns to the pool when that thread has stopped, and what the reader saw of the answer is kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from services.chat.backends import BackendError, RemoteModel
from services.chat.citations import MARKER, AnswerFilter
from services.chat.convert import citation, citation_json, sentence
from services.chat.guard import RepetitionGuard
from services.chat.loading import Generator
from services.chat.model import Prefill, Sampling
from services.chat.pipe import END, TokenPipe
from services.chat.prompt import Source, Turn
from services.chat.slots import SlotPool
from services.chat.store import ChatStore, NewTurn
from services.chat.support import support, without_unsupported
from shared.contracts import FINISH_FAILED, FINISH_LOOP, NOT_IN_NOTES, PURPOSE_USER
from shared.conversions import sentence_json
from shared.gen.tessera.v1 import chat_pb2, common_pb2
from shared.runtime import metrics, tracing
from shared.runtime.config import Settings
from shared.runtime.principal import Principal
from shared.runtime.principal import current as current_principal

log = logging.getLogger("tessera.chat")


@dataclass
class Research:
    """A research-mode question before its searches: the caller's filters and what the question itself found."""

    filters: common_pb2.Filters
    found: list[Source]


@dataclass
class Prepared:
    """A question ready to answer: retrieval done, the prompt built (or the fixed reply chosen)."""

    conversation_id: str
    is_new: bool
    question: str
    title: str
    plan_sources: list[Source]
    prompt_tokens: list[int]
    messages: list[dict[str, str]]
    sampling: Sampling
    stop: list[str]
    retrieval_ms: float
    abstain: str = ""  # the fixed "not in your notes" reply: nothing is generated
    trace: Any = None  # the request's trace context: the QUIC path generates outside the StartChat call
    request_id: str = ""
    project: str = ""
    purpose: str = PURPOSE_USER  # a new conversation's
    chunks: dict[str, str] = field(default_factory=dict)  # each source's whole chunk text (the prompt may hold passages)
    history: list[Turn] = field(default_factory=list)  # the turns before the question (the prompt keeps what fits)
    system_extra: str = ""  # the caller's own instructions
    research: Research | None = None  # research mode: the searches are still to plan and run
    check_tokens: list[int] = field(default_factory=list)  # the model's check before it answers (check.py); []: none
    check_prefill: Prefill | None = None  # what the check's prefill cost (the answer's own prefill adds to it)
    #: whom it answers (its searches and stored turns see what they may see); the QUIC path runs outside the call
    principal: Principal = field(default_factory=lambda: current_principal.get())


async def store_question(store: ChatStore, p: Prepared, message_id: str) -> None:
    await store.store_question(NewTurn(p.conversation_id, p.is_new, p.title, p.question, len(p.prompt_tokens), p.purpose), message_id)


def generate(model: Generator, p: Prepared, pipe: TokenPipe) -> tuple[str, int, str]:
    """The model thread: generate under the repetition guard, then always mark the end (unless the reader is gone).

    Returns (finish reason, tokens generated, failure sentence or "").
    """
    guard = RepetitionGuard()

    def emit(text: str) -> bool:
        if guard.feed(text):
            return False
        pipe.produced += 1
        return pipe.put(text)

    try:
        finish, produced = model.generate(p.prompt_tokens, p.messages, p.sampling, p.stop, pipe.cancel, emit)
        return (FINISH_LOOP if guard.looping else finish), produced, ""
    except BackendError as exc:
        log.warning("%s", exc)
        return "error", pipe.produced, str(exc)
    except Exception:  # boundary: the model thread; any failure ends this answer with an error event, never the process
        log.exception("chat: generation failed")
        return "error", pipe.produced, "chat: the model failed while generating; see the chat log"
    finally:
        pipe.put(END)


class AnswerRun:
    """One answer's state from the first token to the stored turn."""

    def __init__(self, settings: Settings, store: ChatStore, pool: SlotPool[Generator], p: Prepared, model: Generator,
                 started: float) -> None:
        self.settings, self.store, self.pool, self.p, self.model, self.started = settings, store, pool, p, model, started
        self.message_id = str(uuid.uuid4())
        self.pipe = TokenPipe(asyncio.get_running_loop(), settings.chat.stream_buffer, settings.chat.stall_timeout_s)
        self.filt = AnswerFilter({s.number: s.text for s in p.plan_sources}, p.stop, settings.chat.attribution == "overlap")
        self.by_number = {s.number: s for s in p.plan_sources}
        self.origins: dict[int, str] = {}
        self.index = 0
        self.finish, self.completion, self.stored = "cancelled", 0, False
        self.first_token: float | None = None
        self.first_token_ns = 0
        self.gen_started = 0

    async def events(self) -> AsyncIterator[chat_pb2.ChatEvent]:
        # Prefill starts at once; the turn is stored meanwhile, and no token is read before it is.
        self.gen_started = time.time_ns()
        gen = asyncio.ensure_future(asyncio.to_thread(generate, self.model, self.p, self.pipe))
        # The slot goes back only when the model thread has stopped, whatever happens to this call.
        gen.add_done_callback(lambda _: self.pool.release(self.model))
        try:
            await store_question(self.store, self.p, self.message_id)
        except BaseException:
            self.pipe.cancel.set()
            raise
        try:
            async for event in self._tokens():
                yield event
            async for event in self._end(gen):
                yield event
        finally:
            await self._left()

    async def _tokens(self) -> AsyncIterator[chat_pb2.ChatEvent]:
        """Tokens as events. Tokens that are ready together (the model ran ahead while the loop was busy) leave as one
        event; a lone token leaves as soon as it is read, never waiting for company."""
        ended = False
        while not ended:
            batch = [await self.pipe.get(), *self.pipe.ready()]
            if END in batch:
                ended, batch = True, batch[:batch.index(END)]
            if not batch:
                break
            text, citations = [], []
            for item in batch:
                emitted = self.filt.feed(str(item))
                self.index += 1
                text.append(emitted.text)
                citations.extend(emitted.citations)
                if self.filt.stopped:
                    break
            if self.first_token is None:
                self.first_token, self.first_token_ns = time.monotonic(), time.time_ns()
                metrics.CHAT_TTFT.observe(self.first_token - self.started)
                tracing.start("prefill", parent=self.p.trace, start_ns=self.gen_started,
                              prompt_tokens=len(self.p.prompt_tokens)).end(self.first_token_ns)
            for event in self._events("".join(text), citations):
                yield event
            if self.filt.stopped:
                self.pipe.cancel.set()
                return

    async def _end(self, gen: asyncio.Future[tuple[str, int, str]]) -> AsyncIterator[chat_pb2.ChatEvent]:
        p = self.p
        finish, self.completion, failure = await asyncio.shield(gen)
        if self.filt.stopped and finish != FINISH_LOOP:
            finish = "stop"
        self.finish = finish
        emitted = self.filt.finish()
        for event in self._events(emitted.text, emitted.citations):
            yield event
        if finish == "error":
            await asyncio.shield(self._store_quietly([], FINISH_FAILED))
            self.stored = True
            code = "UNAVAILABLE" if isinstance(self.model, RemoteModel) else "INTERNAL"
            yield chat_pb2.ChatEvent(error=chat_pb2.ChatError(code=code, message=failure))
            return
        metrics.CHAT_TOKENS.inc(self.completion)
        prefill = self.prefill
        metrics.CHAT_PROMPT_TOKENS.labels("cached").inc(prefill.cached)
        metrics.CHAT_PROMPT_TOKENS.labels("evaluated").inc(prefill.evaluated)
        if self.first_token is not None and self.completion > 1 and time.monotonic() > self.first_token:
            metrics.CHAT_TOKENS_PER_S.observe((self.completion - 1) / (time.monotonic() - self.first_token))
        text, judged = self.filt.answer, support(self.filt.answer, p.plan_sources, p.chunks) if p.plan_sources else []
        replaced = ""
        if self.settings.chat.unsupported == "remove" and any(x.supported is False for x in judged):
            text, judged = without_unsupported(text, judged)
            text = replaced = text or NOT_IN_NOTES  # nothing supported is left: the honest reply
        sentences = [sentence(x, self.by_number) for x in judged]
        await self.store.store_answer(p.conversation_id, self.message_id, text, self._cited(), finish, self.completion,
                                      [sentence_json(x) for x in sentences])
        self.stored = True
        yield chat_pb2.ChatEvent(done=chat_pb2.ChatDone(
            finish_reason=finish, prompt_tokens=len(p.prompt_tokens), completion_tokens=self.completion, conversation_id=p.conversation_id,
            message_id=self.message_id, duration_ms=(time.monotonic() - self.started) * 1000, retrieval_ms=p.retrieval_ms,
            sources=[citation(s, self.origins.get(s.number, "")) for s in p.plan_sources], sentences=sentences,
            cached_tokens=prefill.cached, prefill_ms=prefill.ms, text=replaced))

    @property
    def prefill(self) -> Prefill:
        """The prompt's cost: the check's prefill (when it ran) and the answer's, which found the check's prompt cached."""
        answer, check = self.model.last_prefill, self.p.check_prefill
        if check is None:
            return answer
        return Prefill(cached=check.cached, evaluated=check.evaluated + answer.evaluated, ms=check.ms + answer.ms)

    async def _left(self) -> None:
        """Whatever ended the answer: the model thread is told to stop, and an answer the reader walked away from is
        stored as far as it went."""
        self.pipe.cancel.set()
        metrics.CHAT_ANSWERS.labels(self.finish if self.stored else "cancelled").inc()
        if self.first_token_ns:
            tracing.start("generation", parent=self.p.trace, start_ns=self.first_token_ns, finish=self.finish if self.stored else "cancelled",
                          completion_tokens=self.completion if self.stored else self.pipe.produced).end()
        if not self.stored:
            await asyncio.shield(self._store_quietly(self._cited(), "cancelled", self.pipe.produced))

    def _cited(self) -> list[dict[str, Any]]:
        return [citation_json(self.by_number[n], self.origins[n]) for n in self.filt.cited]

    @property
    def cited_documents(self) -> list[str]:
        """The documents the answer cited, each once."""
        return list(dict.fromkeys(str(c.get("document_id", "")) for c in self._cited() if c.get("document_id")))

    async def _store_quietly(self, cited: list[dict[str, Any]], finish: str, completion: int = 0) -> None:
        try:
            await asyncio.wait_for(self.store.store_answer(self.p.conversation_id, self.message_id, self.filt.answer, cited, finish,
                                                           completion), timeout=5)
        except Exception as exc:  # noqa: BLE001 — boundary: best effort for a reader that has left; the answer is over either way
            log.warning("chat: could not store a %s answer: %s", finish, exc)

    def _events(self, text: str, new: list[tuple[int, str]]) -> list[chat_pb2.ChatEvent]:
        events = []
        for number, origin in new:
            self.origins[number] = origin
            events.append(chat_pb2.ChatEvent(citation=citation(self.by_number[number], origin)))
        if text:
            numbers = [int(n) for m in MARKER.finditer(text) for n in m.group(1).split(",")]
            events.append(chat_pb2.ChatEvent(token=chat_pb2.TokenChunk(text=text, index=self.index - 1, citations=numbers)))
        return events
