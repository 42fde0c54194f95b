"""The repetition guard: stops an answer that has started to loop; no I/O.

Small models at temperature 0 fall into loops ("It is a leader. It is a
leader. …", or letters spelled out with dashes until max_tokens). The model
gets a repeat penalty, and on top of it this guard watches the generated
tokens: once the same run of ``n`` tokens has appeared ``times`` times in the
answer, generation stops and the answer is marked ``finish_reason="loop"``.

Tokens are compared by their text, lower-cased with surrounding whitespace
removed, so " Leader" and "leader" count as the same word; runs made only of
whitespace and punctuation (a markdown table rule, a code fence) never count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Tokens in a run: long enough that prose with citations ("… the [1]. The …") does not repeat one three times,
#: short enough to catch a looping sentence, and a short cycle after 10 + 2 × its length tokens.
NGRAM = 10
#: How many appearances of one run make a loop.
TIMES = 3


def _norm(token: str) -> str:
    return token.strip().lower()


@dataclass
class RepetitionGuard:
    """Feed each generated token's text; ``looping`` turns True once a run of ``n`` tokens appears ``times`` times."""

    n: int = NGRAM
    times: int = TIMES
    tokens: list[str] = field(default_factory=list)
    seen: Counter[tuple[str, ...]] = field(default_factory=Counter)
    looping: bool = False

    def feed(self, token: str) -> bool:
        """Record one token; True when the answer is looping (stop generating)."""
        self.tokens.append(_norm(token))
        if len(self.tokens) < self.n:
            return self.looping
        run = tuple(self.tokens[-self.n:])
        if not any(any(ch.isalnum() for ch in t) for t in run):
            return self.looping
        self.seen[run] += 1
        if self.seen[run] >= self.times:
            self.looping = True
        return self.looping
