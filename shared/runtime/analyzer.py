"""The lexical analyzer: how text becomes index terms, the same at ingest and at query time.

Lower-cased Unicode words of two or more characters (``\\w\\w+``), English stop
words removed, Snowball (Porter 2) stems. This is what bm25s does and what beat
PostgreSQL's ``english`` text-search configuration on both tuning collections
(bench/README.md). Ingest writes a chunk's terms into the postings table with
``term_counts``; search turns a query into terms with ``query_terms``.

No I/O; PyStemmer is a small C extension.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"(?u)\b\w\w+\b")

#: Longest term kept; longer "words" (hashes, base64) are cut to this many characters.
MAX_TERM_CHARS = 64

#: English function words: articles, pronouns, auxiliaries, prepositions, conjunctions.
STOPWORDS = frozenset((
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does",
    "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here",
    "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me",
    "more", "most", "my", "myself", "no", "nor", "not", "of", "off", "on", "once", "only", "or", "other", "our", "ours",
    "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their",
    "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under",
    "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will",
    "with", "would", "you", "your", "yours", "yourself", "yourselves"
))


@lru_cache(maxsize=1)
def _stemmer() -> object:
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    stemmer: Any = _stemmer()  # snowballstemmer has no type hints
    return str(stemmer.stemWord(word))


def stem(word: str) -> str:
    """A lower-case word's Snowball stem, as the index keeps it."""
    return _stem(word[:MAX_TERM_CHARS])


def terms(text: str) -> list[str]:
    """The index terms of ``text``, in order, repeats kept."""
    out = []
    for word in _WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        out.append(_stem(word[:MAX_TERM_CHARS]))
    return out


def term_counts(text: str) -> tuple[Counter[str], int]:
    """(term -> count, number of terms): a chunk's postings and its length."""
    ts = terms(text)
    return Counter(ts), len(ts)


def query_terms(text: str, max_terms: int = 64) -> dict[str, int]:
    """Distinct terms of a query with their counts, at most ``max_terms`` (the first ones, so a pasted page stays bounded)."""
    out: dict[str, int] = {}
    for t in terms(text):
        if t in out:
            out[t] += 1
        elif len(out) < max_terms:
            out[t] = 1
    return out


def highlights(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of ``text`` whose words share a term with ``query`` (for highlighting matched words in a snippet)."""
    wanted = set(query_terms(query))
    if not wanted:
        return []
    spans = []
    for m in _WORD.finditer(text):
        word = m.group().lower()
        if word not in STOPWORDS and _stem(word[:MAX_TERM_CHARS]) in wanted:
            spans.append((m.start(), m.end()))
    return spans
