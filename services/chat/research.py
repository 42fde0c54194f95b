"""Research mode: for a question that spans several notes, the model plans searches (JSON under a grammar), each is
run, and one answer is written from what they found, citing every note it uses.

It stops searching when the sources found hold the question's content words (COVERED of them), or at the bound on
searches (MAX_QUERIES) or on time (``TESSERA_CHAT_RESEARCH_S``). The sources go into the prompt interleaved: the
question's own best, then each search's best, then the rest, so each search's find is in even when the context is
short. Each step is an event (ResearchStep) the person sees as it happens.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from services.chat.answer import Prepared
from services.chat.check import coverage
from services.chat.citations import content_words
from services.chat.loading import Generator
from services.chat.model import Sampling
from services.chat.prompt import Source
from services.chat.slots import in_model_thread
from shared.gen.tessera.v1 import chat_pb2, common_pb2

#: A search of the notes: (query, filters) -> its sources.
Search = Callable[[str, common_pb2.Filters], Awaitable[list[Source]]]

MAX_QUERIES = 3
#: Sources each search brings.
TOP_K = 3
#: The share of the question's content words the sources must hold to stop searching.
COVERED = 0.8
PLAN_TOKENS = 160
PLAN_SCHEMA = {"type": "object", "properties": {"queries": {"type": "array", "items": {"type": "string", "maxLength": 120},
                                                            "maxItems": MAX_QUERIES}},
               "required": ["queries"]}
PLAN_SYSTEM = ("You plan searches in a person's notes. Split the question into at most three short search queries, each "
               "about one thing the answer needs (a name, a step, a number). Reply with JSON only: {\"queries\": [...]}.")


def plan_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": PLAN_SYSTEM}, {"role": "user", "content": question}]


def parse_plan(text: str, question: str) -> list[str]:
    """The planned queries: distinct, not empty, not the question again, at most MAX_QUERIES ([] when the text is not
    the JSON asked for)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    queries = data.get("queries") if isinstance(data, dict) else None
    if not isinstance(queries, list):
        return []
    out: list[str] = []
    seen = {" ".join(question.lower().split())}
    for q in queries:
        if not isinstance(q, str):
            continue
        key = " ".join(q.lower().split())
        if key and key not in seen and content_words(q):
            seen.add(key)
            out.append(" ".join(q.split())[:120])
    return out[:MAX_QUERIES]


def merged(groups: Sequence[Sequence[Source]], limit: int) -> list[Source]:
    """The sources of every search, each chunk once, interleaved by rank (each search's best first), at most ``limit``."""
    out: list[Source] = []
    seen: set[str] = set()
    for rank in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if rank < len(group) and group[rank].chunk_id not in seen:
                seen.add(group[rank].chunk_id)
                out.append(group[rank])
    return out[:limit]


@dataclass(frozen=True)
class Findings:
    """What the searches found (the question's own first, interleaved with each search's) and the planned queries."""

    sources: list[Source]
    queries: list[str]

    def instructions(self) -> str:
        """Beside the answer's system prompt: the parts the answer must cover, each from its own source."""
        if len(self.queries) < 2:
            return ""
        parts = "\n".join(f"- {q}" for q in self.queries)
        return f"The question has several parts. Answer each part in a sentence of its own, citing its source:\n{parts}"


def step(kind: str, text: str, started: float, new_sources: int = 0) -> chat_pb2.ChatEvent:
    return chat_pb2.ChatEvent(step=chat_pb2.ResearchStep(kind=kind, text=text, new_sources=new_sources,
                                                         ms=(time.monotonic() - started) * 1000))


def plan(model: Generator, tokens: list[int], messages: list[dict[str, str]], cancel: threading.Event) -> str:
    """The model's plan, as JSON under the plan's grammar (the model thread)."""
    out: list[str] = []

    def emit(text: str) -> bool:
        out.append(text)
        return True

    model.generate(tokens, messages, Sampling(max_tokens=PLAN_TOKENS), [], cancel, emit, schema=PLAN_SCHEMA)
    return "".join(out)


async def run(p: Prepared, model: Generator, search: Search, tokenize: Callable[[list[dict[str, str]]], list[int]],
              limit: int, bound_s: float) -> AsyncIterator[chat_pb2.ChatEvent | Findings]:
    """Plan, then search until the sources cover the question or a bound is met: each step's event, and last the
    sources found (the question's own first, interleaved with each search's)."""
    assert p.research is not None
    started = time.monotonic()
    messages = plan_messages(p.question)
    tokens = await asyncio.to_thread(tokenize, messages)
    text = await in_model_thread(lambda cancel: plan(model, tokens, messages, cancel))
    queries = parse_plan(text, p.question)
    yield step("plan", "\n".join(queries) if queries else "(no plan: the question's own search only)", started)
    groups: list[list[Source]] = [p.research.found]
    for query in queries:
        if coverage(p.question, merged(groups, limit)) >= COVERED and len(groups) > 1:
            yield step("covered", f"the sources hold {coverage(p.question, merged(groups, limit)):.0%} of the question's words", started)
            break
        if time.monotonic() - started > bound_s:
            yield step("bound", f"searching stopped after {bound_s:g} s", started)
            break
        t0 = time.monotonic()
        found = await search(query, p.research.filters)
        known = {s.chunk_id for g in groups for s in g}
        groups.append(found)
        yield step("search", query, t0, new_sources=sum(s.chunk_id not in known for s in found))
    yield Findings(merged(groups, limit), queries)
