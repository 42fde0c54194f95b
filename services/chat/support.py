"""Which lines of the sources support each sentence of an answer; no I/O.

An answer is split into sentences (a citation marker after a sentence's end belongs to that sentence). A sentence of
three content words or more is *supported* when one source holds at least SUPPORTED_SHARE of its content words; the
source it cites is preferred when that one does. Its support is that source's lines that hold the most of them (one
line, or a window of up to WINDOW lines). A sentence no source supports is *unsupported*: the stream's ChatDone says
so, the API and the page mark it. Shorter sentences ("Yes.", a heading) are not judged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from services.chat.citations import MARKER, content_words
from services.chat.prompt import Source

#: The share of a sentence's content words one source must hold to support it.
SUPPORTED_SHARE = 0.5
#: Sentences with fewer content words are not judged.
MIN_WORDS = 3
#: The most lines one sentence's support spans.
WINDOW = 3
#: A sentence ends at . ! ? (then space or the end) or a line break; markers right after stay with it.
_END = re.compile(r"(?:[.!?](?:\s*\[[\d,\s]+\])*(?=\s|$)|\n+)")


@dataclass(frozen=True)
class Sentence:
    start: int  # character offsets in the answer
    end: int
    supported: bool | None  # None: too short to judge
    number: int = 0  # the supporting source's number (0: none)
    line_start: int = 0  # its lines in the source's file
    line_end: int = 0
    share: float = 0.0  # the share of the sentence's content words the source holds


def spans(answer: str) -> list[tuple[int, int]]:
    """The sentences of ``answer`` as (start, end) offsets, surrounding space left out."""
    out, pos = [], 0
    for m in _END.finditer(answer):
        out.append((pos, m.end()))
        pos = m.end()
    out.append((pos, len(answer)))
    trimmed = []
    for a, b in out:
        text = answer[a:b]
        lead = len(text) - len(text.lstrip())
        if text.strip():
            trimmed.append((a + lead, a + len(text.rstrip())))
    return trimmed


def _lines(words: set[str], source: Source, text: str) -> tuple[int, int]:
    """The source's lines (in its file) that hold the most of ``words``: the best window of up to WINDOW lines of
    ``text``, the source's whole chunk (the prompt may have held only passages of it)."""
    lines = text.split("\n")
    exact = source.line_start and source.line_end - source.line_start + 1 == len(lines)
    if not exact:
        return source.line_start, source.line_end
    held = [content_words(line) & words for line in lines]
    best, best_at = (0, 0), (0, 0)
    for i in range(len(lines)):
        covered: set[str] = set()
        for j in range(i, min(i + WINDOW, len(lines))):
            covered |= held[j]
            score = (len(covered), -(j - i))  # more words, then fewer lines
            if score > best:
                best, best_at = score, (i, j)
    return source.line_start + best_at[0], source.line_start + best_at[1]


def support(answer: str, sources: Sequence[Source], chunks: Mapping[str, str] | None = None) -> list[Sentence]:
    """Each sentence of the answer with the source lines that support it, or marked unsupported. ``chunks``: each
    source's whole chunk text by chunk id, where the prompt held only passages of it (the lines are found in it)."""
    words_of = {s.number: content_words(s.text) for s in sources}
    by_number = {s.number: s for s in sources}
    out = []
    for a, b in spans(answer):
        text = answer[a:b]
        cited = [int(n) for m in MARKER.finditer(text) for n in m.group(1).split(",") if int(n) in by_number]
        words = content_words(MARKER.sub(" ", text))
        if len(words) < MIN_WORDS:
            out.append(Sentence(a, b, None))
            continue
        shares = {n: len(words & w) / len(words) for n, w in words_of.items()}
        if not shares:
            out.append(Sentence(a, b, False))
            continue
        best = max(sorted(shares), key=lambda n: shares[n])
        chosen = next((n for n in cited if shares[n] >= SUPPORTED_SHARE), best)
        if shares[chosen] < SUPPORTED_SHARE:
            out.append(Sentence(a, b, False, share=round(shares[best], 3)))
            continue
        source = by_number[chosen]
        line_start, line_end = _lines(words, source, (chunks or {}).get(source.chunk_id, source.text))
        out.append(Sentence(a, b, True, chosen, line_start, line_end, round(shares[chosen], 3)))
    return out


#: A list item's marker alone ("2.", "-"), which the sentence split leaves apart from its item.
_LIST_MARK = re.compile(r"\s*(?:\d{1,3}[.)]|[-*+])\s*")


def without_unsupported(answer: str, sentences: Sequence[Sentence]) -> tuple[str, list[Sentence]]:
    """The answer with its unsupported sentences left out (TESSERA_CHAT_UNSUPPORTED=remove), and the sentences kept,
    their offsets moved into the new text. Each kept sentence keeps the space or line break that came before it."""
    out = ""
    kept: list[Sentence] = []
    for i, s in enumerate(sentences):
        if s.supported is False:
            continue
        if _LIST_MARK.fullmatch(answer[s.start:s.end]) and i + 1 < len(sentences) and sentences[i + 1].supported is False:
            continue  # a list item's number ("2.") goes with the item it numbers
        if out:
            j = s.start
            while j > 0 and answer[j - 1].isspace():
                j -= 1
            out += answer[j:s.start] or " "
        kept.append(replace(s, start=len(out), end=len(out) + s.end - s.start))
        out += answer[s.start:s.end]
    return out, kept
