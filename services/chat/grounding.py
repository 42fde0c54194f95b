"""Grounding: which retrieved sources may support an answer, and which part of each goes into the prompt; no I/O.

* **The relevance floor.** A source whose best similarity to the question
  (the vector signal's cosine) is below the floor cannot support an answer.
  When no source passes, nothing is generated: the answer is the fixed
  :data:`NOT_IN_NOTES` sentence followed by the closest hits, so a question the
  notes do not cover gets an honest "not in your notes", never an invention.
* **Focused passages.** Of a source that passes, only the sentences that share
  words with the question go into the prompt (with their neighbours, in their
  order), up to ``max_chars``: prefill stays short and the model reads the
  facts that matter. The citation keeps the chunk's id, path and line range.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from services.chat.citations import STOPWORDS
from services.chat.prompt import Source, cut_at_word
from shared.contracts import NOT_IN_NOTES

#: Characters of a source kept in the prompt.
PASSAGE_CHARS = 700

_WORD = re.compile(r"[a-z0-9][a-z0-9_.+-]*[a-z0-9]|[a-z0-9]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[-*+]|\d+\.)\s)")
#: Words a question is made of that say nothing about its subject, beside the answer filter's stopwords.
_QUESTION_WORDS = "a an of to in on at by as is be do how what when why which who whom i we me my if or tell please explain describe say notes note"
_STOP = STOPWORDS | frozenset(_QUESTION_WORDS.split())


def terms(text: str) -> set[str]:
    """Content words, lower-cased, with a plural or verb 's' taken off: what a question and a passage share."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(w)
    return out


def supported(sources: Sequence[Source], floor: float) -> list[Source]:
    """The sources relevant enough to answer from, in their order; [] means: do not generate."""
    return [s for s in sources if s.relevance >= floor]


def not_in_notes(closest: Sequence[tuple[str, str, int, int]]) -> str:
    """The fixed answer, then the closest hits as (title, path, line_start, line_end)."""
    if not closest:
        return NOT_IN_NOTES
    lines = [f"- {title or path} ({path}:{start}-{end})" for title, path, start, end in closest]
    return NOT_IN_NOTES + "\nClosest notes:\n" + "\n".join(lines)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def focus(text: str, question: str, max_chars: int = PASSAGE_CHARS) -> str:
    """The sentences of ``text`` that share words with ``question`` (and their neighbours), in order, within ``max_chars``.

    A text that already fits is kept whole; one that shares nothing keeps its beginning.
    """
    text = text.strip()
    if len(text) <= max_chars:
        return text
    parts = sentences(text)
    wanted = terms(question)
    scores = [len(terms(p) & wanted) for p in parts]
    if not any(scores):
        return cut_at_word(text, max_chars)
    # Best sentences first; each brings its next neighbour (the answer often continues there), while room is left.
    chosen: set[int] = set()
    used = 0
    for i in sorted(range(len(parts)), key=lambda i: (-scores[i], i)):
        if scores[i] == 0:
            break
        for j in (i, i + 1, i - 1):
            if 0 <= j < len(parts) and j not in chosen and used + len(parts[j]) + 1 <= max_chars:
                chosen.add(j)
                used += len(parts[j]) + 1
        if used >= max_chars * 0.9:
            break
    if not chosen:
        return cut_at_word(parts[max(range(len(parts)), key=lambda i: scores[i])], max_chars)
    out: list[str] = []
    last = -2
    for j in sorted(chosen):
        if out and j != last + 1:
            out.append("…")
        out.append(parts[j])
        last = j
    return " ".join(out)


def focused(sources: Sequence[Source], question: str, max_chars: int = PASSAGE_CHARS) -> list[Source]:
    """Each source with its text cut to the passages that match the question."""
    return [replace(s, text=focus(s.text, question, max_chars)) for s in sources]
