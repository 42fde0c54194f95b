"""Rank fusion, per-document deduplication and snippets. No I/O.

Each signal (lexical, vector) ranks chunks. A document takes the rank of its best
chunk in each signal; weighted reciprocal rank fusion (k=60 by default) adds
weight/(k + rank) over signals; the hit keeps the chunk that ranked best in any signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    chunk_id: str
    document_id: str
    score: float
    terms: tuple[tuple[str, float], ...] = ()  # lexical: matched terms with their contribution to the score


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


def fuse_rrf(signals: dict[str, list[Candidate]], k: int = 60, limit: int = 10,
             weights: dict[str, float] | None = None) -> list[Fused]:
    """Weighted reciprocal rank fusion of per-document rankings: a document scores the sum over
    signals of weight / (k + rank); ties keep the earlier best rank."""
    fused: dict[str, Fused] = {}
    best_rank: dict[str, int] = {}
    for name, ranked in signals.items():
        w = (weights or {}).get(name, 1.0)
        for rank, cand in enumerate(per_document(ranked), start=1):
            hit = fused.setdefault(cand.document_id, Fused(cand.document_id, cand.chunk_id, 0.0))
            hit.contributions[name] = w / (k + rank)
            hit.score += hit.contributions[name]
            hit.signals[name] = (cand.score, rank)
            if cand.terms:
                hit.terms = cand.terms
            if rank < best_rank.get(cand.document_id, 1 << 30):
                best_rank[cand.document_id] = rank
                hit.chunk_id = cand.chunk_id
    return sorted(fused.values(), key=lambda f: (-f.score, best_rank[f.document_id]))[:limit]


_WORD = re.compile(r"\w+", re.UNICODE)


def snippet(text: str, query: str, line_start: int, max_chars: int = 320) -> tuple[str, int, int]:
    """The lines of a chunk that best match the query (± one line), with their 1-based line range in the source."""
    terms = {w.lower() for w in _WORD.findall(query) if len(w) > 2}
    lines = text.splitlines() or [text]

    def hits(line: str) -> int:
        return sum(1 for w in _WORD.findall(line.lower()) if w in terms or any(w.startswith(t[:5]) for t in terms if len(t) > 5))

    best = max(range(len(lines)), key=lambda i: (hits(lines[i]), -i))
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
