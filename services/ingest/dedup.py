"""Near-duplicate text by word shingles. No I/O.

Text is compared with text: lower-cased word triples (shingles), hashed to 32 bits. A capture repeats a note when most
of its triples are in the note (containment, so a paragraph copied out of a long note counts); two documents are near
duplicates when they share most of their triples (Jaccard). Titles and heading context are left out, so two notes with
the same title and different bodies are not alike. Candidates for the whole-document check come from MinHash bands
stored with each document: documents that share a band are compared exactly.

Linear in the input: one pass over the words, one hash per shingle, and ``MINHASH`` minimums over them in numpy."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable

import numpy as np

WORD = re.compile(r"\w+")
HEADING = re.compile(r"^#{1,6}[ \t].*$", re.MULTILINE)  # a markdown heading line: the note's title or a section's, not its text
#: Words per shingle. Triples, chosen on the tune half of tests/data/dedup/pairs.jsonl (make bench-dedup): copied text
#: with one word in fifteen edited keeps about two thirds of its triples, a paraphrase or a quote a third at most.
SHINGLE_WORDS = 3
MINHASH = 64
BAND_ROWS = 4  # 16 bands of 4: documents at Jaccard 0.8 share a band with probability 0.9996, at 0.3 with 0.12
_PRIME = (1 << 61) - 1
_rng = np.random.default_rng(0x7E55E4A)
_A = _rng.integers(1, 1 << 31, MINHASH, dtype=np.uint64)
_B = _rng.integers(0, 1 << 31, MINHASH, dtype=np.uint64)


def words(text: str) -> list[str]:
    """The lower-cased words of a text, its markdown heading lines left out."""
    return WORD.findall(HEADING.sub(" ", text).lower())


def shingles(text: str | Iterable[str], k: int = SHINGLE_WORDS) -> set[int]:
    """The hashed k-word shingles of a text (or of several texts, each on its own); a text shorter than k words is one
    shingle."""
    out: set[int] = set()
    for t in [text] if isinstance(text, str) else text:
        w = words(t)
        if len(w) < k:
            if w:
                out.add(zlib.crc32(" ".join(w).encode()))
            continue
        out.update(zlib.crc32(" ".join(w[i:i + k]).encode()) for i in range(len(w) - k + 1))
    return out


def containment(part: set[int], whole: set[int]) -> float:
    """The share of ``part``'s shingles found in ``whole``."""
    return len(part & whole) / len(part) if part else 0.0


def jaccard(a: set[int], b: set[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def minhash(sh: set[int]) -> np.ndarray:
    """``MINHASH`` minimums of (a·x + b) mod 2⁶¹−1 over the shingles (each under 2³², a and b under 2³¹: no overflow)."""
    if not sh:
        return np.zeros(0, dtype=np.uint64)
    x = np.fromiter(sh, dtype=np.uint64, count=len(sh))
    return np.array([((a * x + b) % _PRIME).min() for a, b in zip(_A, _B, strict=True)], dtype=np.uint64)


def bands(sh: set[int]) -> list[int]:
    """The document's MinHash bands as signed 64-bit ints (a PostgreSQL bigint[]), each salted with its band number."""
    sig = minhash(sh)
    if not sig.size:
        return []
    out = []
    for i in range(0, MINHASH, BAND_ROWS):
        digest = hashlib.blake2b(i.to_bytes(2, "little") + sig[i:i + BAND_ROWS].tobytes(), digest_size=8).digest()
        out.append(int.from_bytes(digest, "little", signed=True))
    return out
