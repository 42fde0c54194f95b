"""Topic clusters over document vectors, named by class-based TF-IDF; no I/O.

A document's vector is the mean of its chunks' vectors, normalised. k-means on the unit sphere (spherical in
effect: the vectors are normalised) groups them; the count is the one of a few candidates around sqrt(n / 2)
(every count up to n / 2 for a small project) whose clustering scores the best silhouette, so a handful of notes
on three subjects make three clusters and thousands make dozens. The map places each document by t-SNE. A cluster is named by the terms that
are frequent in it and rare in the others (c-TF-IDF, as BERTopic does). Across re-clusters a new cluster takes
the id of the old cluster it shares most documents with, greedily by overlap, so ids stay stable where
membership does.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shared.runtime import analyzer
from shared.runtime.analyzer import STOPWORDS
from shared.runtime.cpu import native_threads

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


def k_candidates(n: int) -> list[int]:
    """The cluster counts tried for n documents: every k a small project allows (up to n/2, at most 12), else
    multiples of :func:`k_for` from a half to twice it (at most 60)."""
    if n < 4:
        return [min(2, n)] if n >= 2 else []
    if n <= 40:
        return list(range(2, max(2, min(12, n // 2)) + 1))
    base = k_for(n)
    return sorted({max(2, min(60, n - 1, round(base * f))) for f in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)})


def silhouette(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> float:
    """Mean silhouette by cosine distance, over a sample of at most 2,000 documents (0 when it is undefined)."""
    from sklearn.metrics import silhouette_score

    if len(set(labels.tolist())) < 2 or len(set(labels.tolist())) >= len(x):
        return 0.0
    return float(silhouette_score(x, labels, metric="cosine", sample_size=min(len(x), 2000), random_state=seed))


def cluster_adaptive(vectors: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """Cluster with the count of :func:`k_candidates` that scores the best silhouette: (labels, centroids, silhouette).
    A few notes on three subjects make three clusters, not the two that sqrt(n / 2) gives."""
    x = normalise(np.asarray(vectors, dtype=np.float32))
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for k in k_candidates(len(x)):
        labels, centroids = cluster(x, k, seed)
        score = silhouette(x, labels, seed)
        if best is None or score > best[0] + 1e-9:
            best = (score, labels, centroids)
    if best is None:
        labels, centroids = cluster(x, 1, seed)
        return labels, centroids, 0.0
    return best[1], best[2], best[0]


def cluster_and_layout(vectors: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """:func:`cluster_adaptive` and :func:`layout` with scikit-learn's and NumPy's native pools held to ``threads``
    (upkeep's share of the cores): (labels, centroids, silhouette, places). Run it in the thread that does the work."""
    import sklearn.cluster
    import sklearn.manifold  # noqa: F401  (their OpenMP runtime is loaded before its pool is limited)

    with native_threads(threads):
        labels, centroids, score = cluster_adaptive(vectors)
        return labels, centroids, score, layout(vectors)


#: Past this many documents the map is a PCA projection: t-SNE's cost grows with n log n and it runs in the search process.
TSNE_MAX = 3000


def layout(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each document's place on the map, in [0, 1]²: t-SNE by cosine distance (PCA beyond TSNE_MAX documents), so notes
    that read alike sit together."""
    x = normalise(np.asarray(vectors, dtype=np.float32))
    n = len(x)
    if n < 3:
        return np.array([[0.5, 0.5], [0.25, 0.75]][:n], dtype=np.float32).reshape(n, 2)
    if n <= TSNE_MAX:
        from sklearn.manifold import TSNE

        xy = np.asarray(TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca", metric="cosine",
                             random_state=seed).fit_transform(x), dtype=np.float32)
    else:
        from sklearn.decomposition import PCA

        xy = np.asarray(PCA(n_components=2, random_state=seed).fit_transform(x), dtype=np.float32)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    out: np.ndarray = ((xy - lo) / np.where(hi - lo == 0, 1.0, hi - lo)).astype(np.float32)
    return out


def near(place: tuple[float, float] | None, doc_id: uuid.UUID, spread: float = 0.03) -> tuple[float, float]:
    """A place on the map beside ``place`` (its cluster's middle), the same for a document every time."""
    x, y = place or (0.5, 0.5)
    angle, radius = doc_id.int % 360 * math.pi / 180, spread * ((doc_id.int >> 16) % 100) / 100
    return min(1.0, max(0.0, x + radius * math.cos(angle))), min(1.0, max(0.0, y + radius * math.sin(angle)))


def purity(labels: Sequence[int], truth: Sequence[str]) -> float:
    """The share of documents whose cluster's most common true label is their own."""
    by_cluster: dict[int, Counter[str]] = {}
    for label, t in zip(labels, truth, strict=True):
        by_cluster.setdefault(int(label), Counter())[t] += 1
    return sum(c.most_common(1)[0][1] for c in by_cluster.values()) / max(1, len(truth))


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
