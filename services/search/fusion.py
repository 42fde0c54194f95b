"""Rank fusion, per-document deduplication and snippets. No I/O.

Each signal (lexical, vector) ranks chunks. A document takes the score and rank of its
best chunk in each signal. Two fusions: a convex combination of scores normalised per
signal and query (DBSF, the default: it won on both tuning collections, bench/README.md),
and weighted reciprocal rank fusion. The hit keeps the chunk that ranked best in any signal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 4x, and a search makes hundreds
class Candidate:
    chunk_id: str
    document_id: str
    score: float
    terms: tuple[tuple[str, float], ...] = ()  # lexical: matched terms with their contribution to the score
    rank_score: float | None = None            # what the signal ranked by, when not ``score`` (vector feedback)

    @property
    def fusing(self) -> float:
        return self.score if self.rank_score is None else self.rank_score


@dataclass
class Fused:
    document_id: str
    chunk_id: str
    score: float
    signals: dict[str, tuple[float, int]] = field(default_factory=dict)  # name -> (score, rank)
    contributions: dict[str, float] = field(default_factory=dict)        # name -> its part of score
    terms: tuple[tuple[str, float], ...] = ()                            # the lexical hit's matched terms


def per_document(ranked: list[Candidate]) -> list[Candidate]:
    """Best chunk per document, in rank order."""
    seen: set[str] = set()
    out = []
    for c in ranked:
        if c.document_id not in seen:
            seen.add(c.document_id)
            out.append(c)
    return out


def _fuse(signals: dict[str, list[Candidate]], share: Callable[[str, list[Candidate]], Callable[[int, Candidate], float]],
          limit: int) -> list[Fused]:
    """Per-document rankings summed over signals with each signal's ``share(rank, candidate)``;
    ties keep the earlier best rank, and the hit keeps the chunk that ranked best in any signal (the first signal's
    on equal ranks). Sums are plain floats per document; only the ``limit`` best become ``Fused``."""
    score: dict[str, float] = {}
    best: dict[str, tuple[int, str]] = {}  # document -> (its best rank in any signal, that chunk)
    seen: list[tuple[str, dict[str, tuple[Candidate, int, float]]]] = []  # per signal: document -> (candidate, rank, share)
    for name, ranked in signals.items():
        docs = per_document(ranked)
        if not docs:
            continue
        part = share(name, docs)
        mine: dict[str, tuple[Candidate, int, float]] = {}
        for rank, cand in enumerate(docs, start=1):
            doc = cand.document_id
            value = part(rank, cand)
            mine[doc] = (cand, rank, value)
            score[doc] = score.get(doc, 0.0) + value
            if rank < best.get(doc, (1 << 30, ""))[0]:
                best[doc] = (rank, cand.chunk_id)
        seen.append((name, mine))
    out = []
    for doc in sorted(score, key=lambda d: (-score[d], best[d][0]))[:limit]:
        hit = Fused(doc, best[doc][1], score[doc])
        for name, mine in seen:
            if doc in mine:
                cand, rank, value = mine[doc]
                hit.contributions[name] = value
                hit.signals[name] = (cand.score, rank)
                if cand.terms:
                    hit.terms = cand.terms
        out.append(hit)
    return out


def fuse_rrf(signals: dict[str, list[Candidate]], k: int = 60, limit: int = 10,
             weights: dict[str, float] | None = None) -> list[Fused]:
    """Weighted reciprocal rank fusion: a document scores the sum over signals of weight / (k + rank)."""
    def share(name: str, docs: list[Candidate]) -> Callable[[int, Candidate], float]:
        w = (weights or {}).get(name, 1.0)
        return lambda rank, cand: w / (k + rank)

    return _fuse(signals, share, limit)


def dbsf(values: list[float]) -> tuple[float, float]:
    """(offset, scale) mapping a signal's scores onto [0, 1] between mean − 3σ and mean + 3σ (distribution-based score fusion)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / n) or 1.0
    return mean - 3 * sd, 6 * sd


def fuse_scores(signals: dict[str, list[Candidate]], weights: dict[str, float], limit: int = 10) -> list[Fused]:
    """Convex combination of each signal's normalised per-document scores (DBSF): a document scores the
    sum over signals of weight × (score − (μ − 3σ)) / 6σ, with μ and σ over that signal's documents; a
    signal that did not retrieve a document adds nothing."""
    def share(name: str, docs: list[Candidate]) -> Callable[[int, Candidate], float]:
        offset, scale = dbsf([c.fusing for c in docs])
        w = weights.get(name, 1.0)
        return lambda rank, cand: w * (cand.fusing - offset) / scale

    return _fuse(signals, share, limit)


_WORD = re.compile(r"\w+", re.UNICODE)


def snippet(text: str, query: str, line_start: int, max_chars: int = 320) -> tuple[str, int, int]:
    """The lines of a chunk that best match the query (± one line), with their 1-based line range in the source."""
    terms = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    prefixes = tuple({t[:5] for t in terms if len(t) > 5})  # a long term also matches words sharing its first five letters
    lines = text.splitlines() or [text]

    def hits(line: str) -> int:
        return sum(1 for w in _WORD.findall(line.lower()) if w in terms or w.startswith(prefixes))

    best = max(range(len(lines)), key=lambda i: (hits(lines[i]), -i)) if len(lines) > 1 else 0
    lo, hi = max(0, best - 1), min(len(lines), best + 2)
    while hi - lo > 1 and len("\n".join(lines[lo:hi])) > max_chars:
        if best - lo > hi - 1 - best:
            lo += 1
        else:
            hi -= 1
    body = "\n".join(lines[lo:hi]).strip()
    if len(body) > max_chars:
        body = body[:max_chars].rsplit(" ", 1)[0] + " …"
    return body, line_start + lo, line_start + hi - 1
