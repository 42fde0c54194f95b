"""Topic clusters over document vectors, named by class-based TF-IDF; no I/O.

A document's vector is the mean of its chunks' vectors, normalised. k-means on the unit sphere (spherical in
effect: the vectors are normalised) groups them; k grows with the square root of the collection, so a
handful of notes make two or three clusters and thousands make dozens. A cluster is named by the terms that
are frequent in it and rare in the others (c-TF-IDF, as BERTopic does). Across re-clusters a new cluster takes
the id of the old cluster it shares most documents with, greedily by overlap, so ids stay stable where
membership does.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.runtime import analyzer
from shared.runtime.analyzer import STOPWORDS

_WORD = re.compile(r"[a-z][a-z0-9\-]{2,}")
#: Words too common in notes to name anything.
NOISE = frozenset({"also", "using", "use", "used", "one", "two", "may", "can", "like", "get", "new", "make", "need", "way", "see",
                   "note", "notes", "would", "could", "should", "much", "many", "well", "still", "even", "first", "however", "within",
                   "among", "shown", "show", "shows", "found", "based", "via", "per", "non", "thus", "whether", "without"})


def k_for(n: int) -> int:
    """How many clusters n documents make: about sqrt(n / 2), at least 2, at most 60."""
    return max(2, min(60, round(math.sqrt(n / 2))))


def normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def cluster(vectors: np.ndarray, k: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(label per document, unit centroid per cluster)."""
    from sklearn.cluster import KMeans

    x = normalise(np.asarray(vectors, dtype=np.float32))
    k = min(k or k_for(len(x)), len(x))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    labels = km.labels_.astype(int)
    centroids = normalise(np.stack([x[labels == c].mean(axis=0) if (labels == c).any() else km.cluster_centers_[c] for c in range(k)]))
    return labels, centroids


def terms_of(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and w not in NOISE and not w.isdigit()]


def ctfidf_names(texts_by_cluster: Mapping[int, Sequence[str]], top: int = 5) -> dict[int, list[str]]:
    """The most distinctive terms of each cluster: tf in the cluster × log(1 + mean words per cluster / the term's
    frequency over all clusters). Words are counted by their stem ("wing" and "wings" are one term) and shown in
    their most frequent form."""
    forms: dict[str, Counter[str]] = {}
    counts: dict[int, Counter[str]] = {}
    for c, texts in texts_by_cluster.items():
        cnt = Counter[str]()
        for text in texts:
            for word in terms_of(text):
                stem = analyzer.stem(word)
                cnt[stem] += 1
                forms.setdefault(stem, Counter())[word] += 1
        counts[c] = cnt
    total = Counter[str]()
    for cnt in counts.values():
        total.update(cnt)
    mean_words = sum(sum(c.values()) for c in counts.values()) / max(1, len(counts))
    out: dict[int, list[str]] = {}
    for c, cnt in counts.items():
        words = sum(cnt.values()) or 1
        scored = sorted(((f / words) * math.log(1 + mean_words / total[t]), t) for t, f in cnt.items() if f >= 2 or len(cnt) < 20)
        out[c] = [forms[t].most_common(1)[0][0] for _, t in sorted(scored, key=lambda x: (-x[0], x[1]))[:top]]
    return out


def name_of(terms: Sequence[str]) -> str:
    return ", ".join(terms[:3]) if terms else "unnamed"


def stable_ids(new_members: Mapping[int, set[str]], old_members: Mapping[int, set[str]], fresh: Iterator[int]) -> dict[int, int]:
    """Label → cluster id: each old id goes to the new cluster it overlaps most (largest overlaps first); the rest take ids from
    ``fresh`` (never one of the old ids)."""
    pairs = sorted(((len(m & o), label, old) for label, m in new_members.items() for old, o in old_members.items() if m & o), reverse=True)
    ids: dict[int, int] = {}
    taken: set[int] = set()
    for _overlap, label, old in pairs:
        if label not in ids and old not in taken:
            ids[label] = old
            taken.add(old)
    for label in sorted(new_members):
        if label not in ids:
            ids[label] = next(fresh)
    return ids


@dataclass(frozen=True)
class Merge:
    a: int
    b: int
    similarity: float


def merge_suggestions(ids: Sequence[int], centroids: np.ndarray, threshold: float) -> list[Merge]:
    """Pairs of clusters whose centroids are at least ``threshold`` similar, most similar first."""
    if len(ids) < 2:
        return []
    c = normalise(np.asarray(centroids, dtype=np.float32))
    sims = c @ c.T
    out = [Merge(ids[i], ids[j], float(sims[i, j])) for i in range(len(ids)) for j in range(i + 1, len(ids)) if sims[i, j] >= threshold]
    return sorted(out, key=lambda m: -m.similarity)
