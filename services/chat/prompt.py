"""Prompt building for retrieval-augmented answers; no I/O.

The prompt is the model's chat template rendered over: a system message that
asks for numbered citations, one short worked example (small models copy its
form), the conversation so far, and the question with its numbered sources.
Everything is measured with the model's own tokenizer through ``count``, so the
prompt plus the answer's token allowance never exceeds the context window:
sources are added best first (the last one cut at a word boundary to fit), then
as much recent history as still fits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from shared.errors import InvalidArgument

Render = Callable[[list[dict[str, str]]], str]
Count = Callable[[str], int]

#: Short on purpose: SmolLM2-135M follows this wording and copies the example's form; longer ones made it ramble.
SYSTEM_RAG = "Answer the question from the sources. Cite the source number in brackets, like [2]."
SYSTEM_PLAIN = "You are Tessera, a helpful assistant."
EXAMPLE_QUESTION = "Source [1]: Tea (notes/tea.md, lines 1-2)\nGreen tea brews at 80 degrees for two minutes.\n\nQuestion: How long does green tea brew?"
EXAMPLE_ANSWER = "Green tea brews for two minutes at 80 degrees [1]."
#: Where a small model starts inventing the next source or question after its answer.
STOP_RAG = ("\nSource [", "\nQuestion:", "\n\n[")
#: Below this many characters a cut source says too little to be worth its tokens.
MIN_SOURCE_CHARS = 160


class PromptTooLong(InvalidArgument):
    """The question alone does not fit the context window with the answer's allowance."""


@dataclass(frozen=True)
class Source:
    """A retrieved chunk as the prompt numbers it."""

    number: int
    chunk_id: str
    document_id: str
    title: str
    path: str
    line_start: int
    line_end: int
    text: str
    score: float = 0.0
    char_start: int = 0
    char_end: int = 0
    heading_path: tuple[str, ...] = ()
    relevance: float = 0.0  # the vector signal's cosine similarity to the question (0: not retrieved by it)


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


@dataclass(frozen=True)
class PromptPlan:
    text: str
    tokens: int
    budget: int
    sources: list[Source]  # numbered 1..n as the prompt shows them (text possibly cut)
    history_used: int  # most recent turns of history that fit


#: Control-token look-alikes of common chat templates (ChatML, Llama 2/3, Mistral, Gemma, Phi). Retrieved text is
#: tokenized as text by the embedded model anyway (ChatTemplate.tokenize_messages); a remote backend renders and
#: tokenizes the messages itself, so there they are broken up, with a word joiner, before they leave.
_CONTROL = re.compile(r"<\||\|>|</?s>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|<\|?(?:eot_id|begin_of_text|end_of_text)\|?>")
#: Where retrieved text starts and ends: a source starts at its "Source [n]:" line and ends where the next one, or the
#: "Question:" line, starts. A line of a note that looks like either is broken up, so a note cannot end its own
#: block and write a question or a source of its own. (Explicit <<< >>> marks around each source cut SmolLM2's
#: fact_recall on the answer eval to 0.48, against 0.61 and 0.63 without them: the boundary keeps the form the models know.)
_MARKERS = re.compile(r"^([ \t]*)(Source \[|Question:)", re.MULTILINE)


def defang(text: str) -> str:
    """Retrieved text with control-token look-alikes and the prompt's own markers broken up (linear: fixed alternatives,
    no nested repetition)."""
    text = _CONTROL.sub(lambda m: m.group(0)[0] + "\u2060" + m.group(0)[1:], text)
    return _MARKERS.sub(lambda m: m.group(1) + m.group(2)[0] + "\u2060" + m.group(2)[1:], text)


def source_block(source: Source) -> str:
    where = f"{source.path}, lines {source.line_start}-{source.line_end}" if source.line_start else source.path
    return f"Source [{source.number}]: {defang(source.title or source.path)} ({defang(where)})\n{defang(source.text.strip())}"


def question_turn(question: str, sources: Sequence[Source]) -> str:
    if not sources:
        return question
    # Best source last, next to the question: small models lean on what they read last.
    return "\n\n".join(source_block(s) for s in reversed(sources)) + "\n\nQuestion: " + question


def messages_for(question: str, sources: Sequence[Source], history: Sequence[Turn], system_extra: str = "") -> list[dict[str, str]]:
    system = SYSTEM_RAG if sources else SYSTEM_PLAIN
    if system_extra:
        system = f"{system}\n\n{system_extra}"
    msgs = [{"role": "system", "content": system}]
    if sources:
        msgs += [{"role": "user", "content": EXAMPLE_QUESTION}, {"role": "assistant", "content": EXAMPLE_ANSWER}]
    msgs += [{"role": t.role, "content": t.content} for t in history]
    msgs.append({"role": "user", "content": question_turn(question, sources)})
    return msgs


def cut_at_word(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + " …"


def build_prompt(question: str, candidates: Sequence[Source], history: Sequence[Turn], *, render: Render, count: Count,
                 context: int, max_tokens: int, system_extra: str = "") -> PromptPlan:
    """The largest prompt that leaves ``max_tokens`` of the context for the answer.

    Raises PromptTooLong when not even the bare question fits.
    """
    budget = context - max_tokens

    def measure(sources: Sequence[Source], hist: Sequence[Turn]) -> tuple[str, int]:
        text = render(messages_for(question, sources, hist, system_extra))
        return text, count(text)

    text, tokens = measure([], [])
    if tokens > budget:
        raise PromptTooLong(f"chat: the question needs {tokens} prompt tokens, but the model's {context}-token context "
                            f"leaves only {budget} beside the {max_tokens} tokens allowed for the answer")
    chosen: list[Source] = []
    for cand in candidates:
        numbered = replace(cand, number=len(chosen) + 1)
        trial_text, trial_tokens = measure([*chosen, numbered], [])
        if trial_tokens <= budget:
            chosen.append(numbered)
            text, tokens = trial_text, trial_tokens
            continue
        # Cut this source to what fits (binary search on characters), then stop.
        lo, hi, best = MIN_SOURCE_CHARS, len(cand.text) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            cut = replace(numbered, text=cut_at_word(cand.text, mid))
            trial_text, trial_tokens = measure([*chosen, cut], [])
            if trial_tokens <= budget:
                best, lo = (cut, trial_text, trial_tokens), mid + 1
            else:
                hi = mid - 1
        if best is not None:
            chosen.append(best[0])
            text, tokens = best[1], best[2]
        break
    used = 0
    for n in range(1, len(history) + 1):
        trial_text, trial_tokens = measure(chosen, history[-n:])
        if trial_tokens > budget:
            break
        text, tokens, used = trial_text, trial_tokens, n
    return PromptPlan(text=text, tokens=tokens, budget=budget, sources=chosen, history_used=used)
