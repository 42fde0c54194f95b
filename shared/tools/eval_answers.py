"""`tessera eval answers FILE [--project P] [--profile NAME] [--ingest DIR]`: answer quality through the running mesh.

FILE is a JSON list of ``{"question", "source", "facts", "answerable", "split"}`` (a multi-hop question names
``"sources": [a, b, ...]``, every note it needs, instead of ``source``). Each
question goes to chat (gRPC stream, retrieval on, temperature 0, three sources).
Per question the eval prints whether its sources were all among the cited files,
which facts (case-insensitive substrings) the answer holds, and whether it
abstained with the fixed "not in your notes" reply. The last line is JSON:

    questions, source_cited, fact_recall, abstention, false_abstention, loops,
    ttft_ms_p50, retrieve_ms, prefill_ms, tokens_per_s, supported_sentences, unsupported_sentences,
    profile, split, relevance {answerable_min, unanswerable_max}, research {questions, fact_recall, all_cited,
    seconds_p50, seconds_max}

``research``: the multi-hop questions asked again in research mode (the model plans searches; ``--no-research``
skips it): the facts its answers hold, the share that cited every note the question needs, and how long each took.

``split`` is ``tune`` (the questions prompts and thresholds may be shaped on) or ``test`` (held out: written after the
prompts were frozen, never looked at while tuning); ``--split`` evaluates one of them.

``source_cited`` and ``fact_recall`` are over answerable questions; ``abstention``
is the share of unanswerable ones answered with the fixed reply; ``ttft_ms_p50``
is the time to the first token of generated answers; ``tokens_per_s`` is their
generation rate after the first token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from rich.console import Console

from shared.client import Citation, Client, Done, StatusError, Step, Token
from shared.contracts import FINISH_LOOP, NOT_IN_NOTES, PURPOSE_EVAL
from shared.errors import ConfigError, DependencyError
from shared.runtime.config import Settings
from shared.tools.evalsets import SPLITS, in_split, read_list, split_of

console = Console(highlight=False)
ANSWER_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Question:
    question: str
    source: str
    facts: tuple[str, ...]
    answerable: bool
    split: str = "tune"
    sources: tuple[str, ...] = ()  # every note a multi-hop question needs (source is the first)

    @property
    def needs(self) -> tuple[str, ...]:
        return self.sources or ((self.source,) if self.source else ())

    @property
    def multi_hop(self) -> bool:
        return len(self.needs) > 1


@dataclass
class Outcome:
    question: Question
    answer: str = ""
    cited: list[str] = field(default_factory=list)  # file names of the cited sources
    finish: str = ""
    ttft_ms: float | None = None
    gen_s: float = 0.0
    tokens: int = 0
    relevance: float = 0.0  # the best cosine similarity among the question's retrieved chunks (what the floor compares)
    retrieve_ms: float = 0.0  # the first token's parts: retrieval, and evaluating the prompt (what the KV cache did not hold)
    prefill_ms: float = 0.0
    supported: int = 0  # the answer's sentences some source supports (services/chat/support.py)
    unsupported: int = 0  # and those none does
    seconds: float = 0.0  # the whole answer, from the question to its end
    steps: int = 0  # research mode's

    @property
    def abstained(self) -> bool:
        return self.answer.startswith(NOT_IN_NOTES)

    @property
    def found(self) -> list[str]:
        text = self.answer.lower()
        return [f for f in self.question.facts if f.lower() in text]

    @property
    def source_cited(self) -> bool:
        """Every note the question needs was cited."""
        return bool(self.question.needs) and all(s in self.cited for s in self.question.needs)


def load_questions(path: Path, split: str = "all") -> list[Question]:
    """The questions of ``path`` in ``split`` (tune, test, or all)."""
    out = []
    for i, q in enumerate(read_list(path, "FILE", "questions")):
        if not isinstance(q, dict) or not isinstance(q.get("question"), str) or not q["question"].strip():
            raise ConfigError("FILE", f"item {i} of {path} has no question")
        answerable = bool(q.get("answerable", True))
        facts = q.get("facts") or []
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise ConfigError("FILE", f"item {i} of {path}: facts must be a list of strings")
        sources = q.get("sources") or []
        if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
            raise ConfigError("FILE", f"item {i} of {path}: sources must be a list of file names")
        source = str(q.get("source") or (sources[0] if sources else ""))
        if answerable and not source:
            raise ConfigError("FILE", f"item {i} of {path} is answerable but names no source file")
        out.append(Question(q["question"].strip(), source, tuple(facts), answerable, split_of(q, i, path, "FILE"), tuple(sources)))
    return in_split(out, split, lambda q: q.split, path, "question")


def research_summary(outcomes: list[Outcome]) -> dict[str, Any] | None:
    """The research block: multi-hop questions answered in research mode (None when none were asked)."""
    if not outcomes:
        return None
    facts = sum(len(o.question.facts) for o in outcomes)
    return {"questions": len(outcomes),
            "fact_recall": round(sum(len(o.found) for o in outcomes) / facts, 4) if facts else None,
            "all_cited": round(sum(o.source_cited for o in outcomes) / len(outcomes), 4),
            "seconds_p50": round(statistics.median(o.seconds for o in outcomes), 1),
            "seconds_max": round(max(o.seconds for o in outcomes), 1)}


def summarize(outcomes: list[Outcome], profile: str, split: str = "all", research: list[Outcome] | None = None) -> dict[str, Any]:
    """The eval's JSON line (pure: unit-tested)."""
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]
    facts = sum(len(o.question.facts) for o in answerable)
    generated = [o for o in outcomes if o.ttft_ms is not None and not o.abstained]
    gen_s = sum(o.gen_s for o in generated)
    gen_tokens = sum(max(o.tokens - 1, 0) for o in generated)

    def share(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    return {
        "questions": len(outcomes),
        "source_cited": share(sum(o.source_cited for o in answerable), len(answerable)),
        "fact_recall": share(sum(len(o.found) for o in answerable), facts),
        "abstention": share(sum(o.abstained for o in unanswerable), len(unanswerable)),
        "false_abstention": share(sum(o.abstained for o in answerable), len(answerable)),
        "loops": sum(o.finish == FINISH_LOOP for o in outcomes),
        # Sentence by sentence: how many of the answers' judged sentences a source supports, and how many none does.
        "supported_sentences": sum(o.supported for o in outcomes),
        "unsupported_sentences": sum(o.unsupported for o in outcomes),
        "supported_share": share(sum(o.supported for o in outcomes), sum(o.supported + o.unsupported for o in outcomes)),
        "ttft_ms_p50": round(statistics.median(o.ttft_ms for o in generated if o.ttft_ms is not None), 1) if generated else None,
        # the first token's parts, p50 over the answers generated
        "retrieve_ms": round(statistics.median(o.retrieve_ms for o in generated), 1) if generated else None,
        "prefill_ms": round(statistics.median(o.prefill_ms for o in generated), 1) if generated else None,
        "tokens_per_s": round(gen_tokens / gen_s, 2) if gen_s > 0 else None,
        "profile": profile,
        "split": split,
        # How the relevance floor separates the two kinds of question: it should sit between these.
        "relevance": {"answerable_min": round(min((o.relevance for o in answerable), default=0.0), 4),
                      "unanswerable_max": round(max((o.relevance for o in unanswerable), default=0.0), 4)},
        "research": research_summary(research or []),
    }


async def best_cosine(client: Client, q: Question, project: str) -> float:
    reply = await client.search(q.question, top_k=3, mode="vector", bypass_cache=True, project=project)
    return max((h.score for h in reply.hits), default=0.0)


async def ask(client: Client, q: Question, project: str, sources: int, max_tokens: int, mode: str = "") -> Outcome:
    out = Outcome(q)
    started = time.monotonic()
    first = 0.0
    text: list[str] = []
    async for ev in await client.chat(q.question, project=project, sources=sources, max_tokens=max_tokens, temperature=0.0,
                                        purpose=PURPOSE_EVAL, mode=mode):
        if isinstance(ev, Token):
            if not text:
                first = time.monotonic()
                out.ttft_ms = (first - started) * 1000
            text.append(ev.text)
        elif isinstance(ev, Citation):
            out.cited.append(PurePosixPath(ev.source.path).name)
        elif isinstance(ev, Step):
            out.steps += 1
        elif isinstance(ev, Done):
            out.finish = ev.finish_reason
            out.tokens = ev.completion_tokens
            out.retrieve_ms, out.prefill_ms = ev.retrieval_ms, ev.prefill_ms
            out.supported = sum(x.support == "supported" for x in ev.sentences)
            out.unsupported = sum(x.support == "unsupported" for x in ev.sentences)
            out.gen_s = time.monotonic() - first if first else 0.0
    out.answer = "".join(text)
    out.seconds = time.monotonic() - started
    return out


def report_line(o: Outcome) -> str:
    q = o.question
    if q.answerable:
        cited = "cited" if o.source_cited else f"NOT cited (cited: {', '.join(o.cited) or 'nothing'})"
        facts = f"facts {len(o.found)}/{len(q.facts)}" + (f" missing {[f for f in q.facts if f not in o.found]}" if len(o.found) < len(q.facts) else "")
        state = "ABSTAINED" if o.abstained else o.finish
        kind = f"research, {o.steps} steps, {o.seconds:.1f} s" if o.steps else "answerable"
        return f"[{kind}] {q.question}\n    {', '.join(q.needs)} {cited}; {facts}; {state}; best cosine {o.relevance:.3f}"
    state = "abstained" if o.abstained else f"ANSWERED ({o.finish})"
    return f"[unanswerable] {q.question}\n    {state}; best cosine {o.relevance:.3f}"


async def run_eval(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    questions = load_questions(Path(args.file), args.split)
    # The gRPC stream, like the eval always read answers; the transport does not change them.
    async with Client(settings, transport="grpc", timeout_s=ANSWER_TIMEOUT_S) as client:
        if args.ingest:
            await client.ingest(args.ingest, project=args.project)
        try:
            info = await client.chat_model()
        except StatusError as exc:
            raise DependencyError(f"{exc} ({exc.code}); is the mesh running?") from None
        if args.profile and args.profile != info.profile:
            raise ConfigError("--profile", f"the mesh's chat runs {info.profile!r} ({info.name}); restart it with "
                                           f"TESSERA_CHAT_MODEL={args.profile} to evaluate that profile")
        outcomes, research = [], []
        for q in questions:
            o = await ask(client, q, args.project, args.sources, args.max_tokens)
            o.relevance = await best_cosine(client, q, args.project)
            outcomes.append(o)
            show(o, args.verbose)
        for q in questions if args.research else []:
            if q.answerable and q.multi_hop:
                o = await ask(client, q, args.project, args.sources, args.max_tokens, mode="research")
                research.append(o)
                show(o, args.verbose)
    return summarize(outcomes, info.profile or info.name, args.split, research)


def show(o: Outcome, verbose: bool) -> None:
    if verbose:
        console.print(f"{report_line(o)}\n    answer: {o.answer.strip()[:300]!r}", markup=False)
    else:
        console.print(report_line(o), markup=False)


def cmd_eval_answers(settings: Settings, args: argparse.Namespace) -> int:
    summary = asyncio.run(run_eval(settings, args))
    print(json.dumps(summary))
    return 0


def add_command(ev: Any) -> None:
    p = ev.add_parser("answers", help="answer quality on a golden question set, through the running mesh")
    p.add_argument("file", help='JSON list of {"question", "source", "facts", "answerable", "split"}')
    p.add_argument("--split", default="all", choices=("all", *SPLITS), help="tune: the questions tuning may look at; test: the "
                                                                        "held-out ones; all (default): both")
    p.add_argument("--project", default="", help="only retrieve from this project")
    p.add_argument("--profile", default="", help="check that the mesh's chat runs this model profile")
    p.add_argument("--ingest", default="", help="ingest this folder (into --project) before asking")
    p.add_argument("--sources", type=int, default=3, help="sources retrieved per question (default 3)")
    p.add_argument("--max-tokens", type=int, default=160, help="answer length limit (default 160)")
    p.add_argument("--verbose", action="store_true", help="print each answer")
    p.add_argument("--no-research", dest="research", action="store_false",
                   help="skip asking the multi-hop questions again in research mode")
    p.set_defaults(fn=cmd_eval_answers)
