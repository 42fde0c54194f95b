"""Turns the model's raw text stream into the answer the user sees; no I/O.

* Citation markers ``[n]`` (or ``[n, m]``) that name a source are kept and
  reported once each; a number that names no source is dropped, never shown.
* Stop strings end the answer before they appear.
* With attribution on, a finished sentence the model left uncited is given the
  source it copies most of its content words from (origin "overlap"), so that a
  small model's answers still point at their sources; a sentence that matches no
  source well enough stays uncited.

Text that might still turn into a marker or a stop string (``"[1"``, a stop
string's first characters) and whitespace after a sentence are held back until
the next piece decides them; everything else leaves at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MARKER = re.compile(r"\[(\s*\d{1,3}(?:\s*,\s*\d{1,3})*\s*)\]")
PARTIAL_MARKER = re.compile(r"\[[\d,\s]{0,16}$")
WORD = re.compile(r"[a-z0-9]{3,}")
_STOPWORDS_TEXT = (
    "the and for are but not you all any can had her was one our out has him his how its may new now own see two way "
    "who did get let put say she too use that with have this will your from they been were what when which their there "
    "than then them these those into also more most some such only over very just about would could should after "
    "before while where being other each does done here because between both under again further"
)
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
SENTENCE_END = ".!?"
#: Attribution needs this many content words, and this share of them found in one source.
MIN_WORDS = 4
MIN_OVERLAP = 0.6


def content_words(text: str) -> set[str]:
    return {w for w in WORD.findall(text.lower()) if w not in STOPWORDS}


def attribute(sentence: str, sources: Mapping[int, set[str]]) -> int | None:
    """The source a sentence copies most of its content words from, if any copies enough."""
    words = content_words(sentence)
    if len(words) < MIN_WORDS:
        return None
    best, best_share = None, 0.0
    for number in sorted(sources):
        share = len(words & sources[number]) / len(words)
        if share > best_share:
            best, best_share = number, share
    return best if best_share >= MIN_OVERLAP else None


@dataclass
class Emitted:
    text: str = ""
    citations: list[tuple[int, str]] = field(default_factory=list)  # (number, origin), first mention only


class AnswerFilter:
    """Feed raw model text in; get shown text and first-time citations out."""

    def __init__(self, source_texts: Mapping[int, str], stop: Sequence[str] = (), attribution: bool = True) -> None:
        self.valid = set(source_texts)
        self.source_words = {n: content_words(t) for n, t in source_texts.items()} if attribution else {}
        self.stop = [s for s in stop if s]
        self.stopped = False
        self.cited: list[int] = []
        self.answer = ""  # everything shown so far
        self._raw = ""  # received, not yet decided
        self._sentence = ""
        self._sentence_cited = False
        self._end = ""  # "", "punct" (sentence may be over) or "boundary" (it is)
        self._held_ws = ""
        self._dropped = False

    def feed(self, text: str) -> Emitted:
        out = Emitted()
        if self.stopped:
            return out
        self._raw += text
        for s in self.stop:
            at = self._raw.find(s)
            if at >= 0:
                self._raw = self._raw[:at]
                self.stopped = True
        if self.stopped:
            self._process(self._raw, out)
            self._raw = ""
            self._finish(out)
            return out
        hold = len(self._raw)
        m = PARTIAL_MARKER.search(self._raw)
        if m:
            hold = m.start()
        for s in self.stop:
            for k in range(min(len(s) - 1, len(self._raw)), 0, -1):
                if self._raw.endswith(s[:k]):
                    hold = min(hold, len(self._raw) - k)
                    break
        ready, self._raw = self._raw[:hold], self._raw[hold:]
        self._process(ready, out)
        return out

    def finish(self) -> Emitted:
        """The end of generation: release what was held and settle the last sentence."""
        out = Emitted()
        if not self.stopped:
            self._process(self._raw, out)
            self._raw = ""
            self._finish(out)
        return out

    # -- internals ---------------------------------------------------------

    def _emit(self, out: Emitted, text: str) -> None:
        out.text += text
        self.answer += text

    def _cite(self, out: Emitted, number: int, origin: str) -> None:
        if number not in self.cited:
            self.cited.append(number)
            out.citations.append((number, origin))

    def _close_sentence(self, out: Emitted) -> None:
        if self._sentence.strip() and not self._sentence_cited and self.source_words:
            number = attribute(self._sentence, self.source_words)
            if number is not None:
                self._emit(out, f"[{number}]")
                self._cite(out, number, "overlap")
        self._sentence, self._sentence_cited, self._end = "", False, ""

    def _process(self, text: str, out: Emitted) -> None:
        pos = 0
        for m in MARKER.finditer(text):
            self._plain(text[pos:m.start()], out)
            self._marker([int(x) for x in m.group(1).split(",")], out)
            pos = m.end()
        self._plain(text[pos:], out)

    def _marker(self, numbers: list[int], out: Emitted) -> None:
        keep = [n for n in dict.fromkeys(numbers) if n in self.valid]
        if not keep:
            self._dropped = True
            return
        self._emit(out, self._held_ws + "".join(f"[{n}]" for n in keep))
        self._held_ws, self._dropped = "", False
        for n in keep:
            self._cite(out, n, "model")
        # A marker right after a sentence's end belongs to that sentence.
        self._sentence_cited = True
        if self._end == "boundary":
            self._sentence, self._end = "", "closed"

    def _plain(self, text: str, out: Emitted) -> None:
        for ch in text:
            if ch.isspace():
                if self._end == "punct" or (ch == "\n" and len(self._sentence.split()) >= 3):
                    self._end = "boundary"
                self._held_ws += ch
                continue
            if self._end == "boundary":
                self._close_sentence(out)
            elif self._end == "closed":
                self._sentence, self._sentence_cited, self._end = "", False, ""
            if self._dropped and ch in ".,;:!?)":
                self._held_ws = ""
            self._emit(out, self._held_ws + ch)
            self._sentence += self._held_ws + ch
            self._held_ws, self._dropped = "", False
            self._end = "punct" if ch in SENTENCE_END else ""

    def _finish(self, out: Emitted) -> None:
        if self._end != "closed":
            self._close_sentence(out)
        self._held_ws = ""
