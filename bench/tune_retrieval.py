"""Retrieval experiments on the tuning collections, offline, in seconds per variant.

The documents are parsed and chunked by ingest's own code and embedded by the embed
service's own encoder (chunk title/heading context + text; cached under
~/.cache/tessera/tune/), so candidates match what the mesh indexes. Lexical scoring
is exact BM25 over the same analyzer the service uses (shared.runtime.analyzer),
fusion is services.search.fusion. Each variant prints nDCG@10 and Recall@100 on
both collections; `tessera eval beir` through the mesh confirms the winner.

    python bench/tune_retrieval.py            # every experiment, a markdown table
    python bench/tune_retrieval.py --only base
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import sparse

from services.embed.encoder import Encoder
from services.embed.server import chunk_input
from services.ingest.chunk import ChunkConfig, chunk_text, default_tokenizer
from services.ingest.parse import parse_markdown
from shared.runtime import analyzer
from shared.runtime.query_encoder import default_model_dir
from shared.tools.eval_beir import file_name, load_beir
from shared.tools.ir_metrics import evaluate

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
CACHE = Path.home() / ".cache" / "tessera" / "tune"
CANDIDATES = 100


@dataclass
class Collection:
    name: str
    doc_of_chunk: list[str]
    contexts: list[str]
    texts: list[str]
    chunk_vecs: np.ndarray
    queries: dict[str, str]
    query_vecs: dict[str, np.ndarray]
    qrels: dict[str, dict[str, int]]
    doc_vecs: dict[str, np.ndarray] = field(default_factory=dict)


def prepare(name: str, encoder: Callable[[], Encoder]) -> Collection:
    corpus, queries, qrels = load_beir(DATA / name, "train")
    judged = {q: queries[q] for q in qrels if q in queries}
    tokenizer = default_tokenizer()
    docs, contexts, texts = [], [], []
    for doc_id, (title, text) in corpus.items():
        body = f"# {title}\n\n{text}\n" if title else f"{text}\n"
        parsed = parse_markdown(body, file_name(doc_id))
        for c in chunk_text(body, parsed.body_offset, markdown=True, config=ChunkConfig(256, 0.10), tokenizer=tokenizer):
            docs.append(doc_id)
            contexts.append(" / ".join([parsed.title, *[h for h in c.heading_path if h != parsed.title]]))
            texts.append(c.text)
    CACHE.mkdir(parents=True, exist_ok=True)
    cpath, qpath = CACHE / f"{name}-chunks.npy", CACHE / f"{name}-queries.npy"
    if not cpath.exists() or np.load(cpath, mmap_mode="r").shape[0] != len(texts):
        np.save(cpath, encoder().encode([chunk_input(c, t) for c, t in zip(contexts, texts, strict=True)]))
    qids = sorted(judged)
    if not qpath.exists() or np.load(qpath, mmap_mode="r").shape[0] != len(qids):
        np.save(qpath, encoder().encode([judged[q] for q in qids]))
    qv = np.load(qpath)
    return Collection(name, docs, contexts, texts, np.load(cpath), judged, {q: qv[i] for i, q in enumerate(qids)}, qrels)


# -- lexical ------------------------------------------------------------------

_PG_WORD = re.compile(r"[a-z0-9]+")


def analyze(text: str, how: str) -> list[str]:
    if how == "snowball":
        return analyzer.terms(text)
    if how == "bigrams":
        ts = analyzer.terms(text)
        return ts + [f"{a} {b}" for a, b in itertools.pairwise(ts)]
    words = [w for w in _PG_WORD.findall(text.lower()) if len(w) > 1]
    if how == "snowball-nostop":
        return [analyzer._stem(w) for w in words]
    if how == "nostem":
        return [w for w in words if w not in analyzer.STOPWORDS]
    raise ValueError(how)


@dataclass(frozen=True)
class Config:
    analyzer: str = "snowball"
    k1: float = 0.9
    b: float = 0.4
    title_weight: float = 1.0     # weight of the context (title/headings) terms; 1 = one field
    rrf_k: int = 60
    fusion: str = "rrf"           # rrf | convex
    w_lex: float = 1.0            # weight of the lexical side (rrf weight, or alpha of convex)
    doc_agg: str = "max"          # max | sum2 (best + 0.5 × second-best chunk)
    dense_prf: float = 0.0        # weight of the mean top-3 vectors added to the query vector
    doc_vector: float = 0.0       # weight of the document mean vector beside the chunk's
    long_query: int = 0           # keep only the N highest-idf query terms (0: all)
    norm: str = "minmax"          # convex: minmax | max | z | dbsf (over each signal's top candidates)
    prf_docs: int = 3             # hybrid feedback: how many fused top documents
    prf_vec: float = 0.0          # ... weight of their mean chunk vector added to the query vector
    prf_lex: float = 0.0          # ... weight of their expansion terms added to the lexical query
    prf_terms: int = 10
    bigram_weight: float = 0.5    # analyzer "bigrams": query weight of adjacent-term pairs
    prf_keep: float = 0.0         # 3-way fusion: share of the vector weight kept by the first-round vector run


class Lexical:
    def __init__(self, col: Collection, how: str, title_weight: float) -> None:
        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        lengths = np.zeros(len(col.texts))
        for i, (ctx, text) in enumerate(zip(col.contexts, col.texts, strict=True)):
            tf: dict[int, float] = {}
            for w, toks in ((title_weight, analyze(ctx, how)), (1.0, analyze(text, how))):
                for t in toks:
                    j = vocab.setdefault(t, len(vocab))
                    tf[j] = tf.get(j, 0.0) + w
            lengths[i] = sum(tf.values())
            rows += [i] * len(tf)
            cols += list(tf)
            vals += list(tf.values())
        self.how, self.vocab, self.lengths = how, vocab, lengths
        self.tf = sparse.csc_matrix((vals, (rows, cols)), shape=(len(col.texts), len(vocab)))
        self.df = np.diff(self.tf.indptr)
        self.n = len(col.texts)
        self._w: dict[tuple[float, float], sparse.csc_matrix] = {}

    def weights(self, k1: float, b: float) -> sparse.csc_matrix:
        if (k1, b) not in self._w:
            m = self.tf.tocoo()
            dl = self.lengths[m.row] / self.lengths.mean()
            w = m.data * (k1 + 1) / (m.data + k1 * (1 - b + b * dl))
            self._w[(k1, b)] = sparse.csc_matrix((w, (m.row, m.col)), shape=m.shape)
        return self._w[(k1, b)]

    def idf(self, j: int) -> float:
        return math.log(1 + (self.n - self.df[j] + 0.5) / (self.df[j] + 0.5))

    def scores_weighted(self, weights: dict[int, float], cfg: Config) -> np.ndarray:
        cols = list(weights)
        q = np.array([self.idf(j) * weights[j] for j in cols])
        return np.asarray(self.weights(cfg.k1, cfg.b)[:, cols] @ q).ravel()

    def expansion(self, chunk_ids: list[int], n_terms: int) -> dict[int, float]:
        """RM3-like: the top documents' terms by mean normalised tf × idf."""
        acc: dict[int, float] = {}
        rows = self.tf.tocsr()
        for i in chunk_ids:
            row = rows[i]
            for j, v in zip(row.indices, row.data, strict=True):
                acc[j] = acc.get(j, 0.0) + v / self.lengths[i] * self.idf(j) / len(chunk_ids)
        best = sorted(acc.items(), key=lambda kv: -kv[1])[:n_terms]
        top = best[0][1] if best else 1.0
        return {j: w / top for j, w in best}

    def query_weights(self, query: str) -> dict[int, float]:
        out: dict[int, float] = {}
        for t in analyze(query, self.how):
            if t in self.vocab:
                out[self.vocab[t]] = out.get(self.vocab[t], 0.0) + 1.0
        return out

    def scores(self, query: str, cfg: Config) -> np.ndarray:
        qt: dict[int, float] = {}
        for t in analyze(query, self.how):
            if t in self.vocab:
                qt[self.vocab[t]] = qt.get(self.vocab[t], 0) + (cfg.bigram_weight if " " in t else 1.0)
        if cfg.long_query and len(qt) > cfg.long_query:
            qt = dict(sorted(qt.items(), key=lambda kv: -self.idf(kv[0]))[:cfg.long_query])
        if not qt:
            return np.zeros(self.n)
        cols = list(qt)
        q = np.array([self.idf(j) * qt[j] for j in cols])
        return np.asarray(self.weights(cfg.k1, cfg.b)[:, cols] @ q).ravel()


def top_docs(col: Collection, scores: np.ndarray, agg: str, n: int = CANDIDATES) -> list[tuple[str, float]]:
    """Documents of the top-n chunks, scored by their best chunk (or best + half the second)."""
    idx = np.argpartition(-scores, min(n, len(scores) - 1))[:n]
    idx = idx[np.argsort(-scores[idx])]
    per: dict[str, list[float]] = {}
    for i in idx:
        if scores[i] > 0 or agg == "dense":
            per.setdefault(col.doc_of_chunk[i], []).append(float(scores[i]))
    second = 0.5 if agg == "sum2" else 0.0
    out = {d: s[0] + second * (s[1] if len(s) > 1 else 0.0) for d, s in per.items()}
    return sorted(out.items(), key=lambda kv: -kv[1])


def fuse(runs: dict[str, list[tuple[str, float]]], cfg: Config) -> list[str]:
    weights = {"lexical": cfg.w_lex, "vector": 1.0}
    score: dict[str, float] = {}
    if cfg.fusion == "rrf":
        for name, ranked in runs.items():
            for r, (d, _) in enumerate(ranked, start=1):
                score[d] = score.get(d, 0.0) + weights[name] / (cfg.rrf_k + r)
    else:  # convex combination of normalised scores
        for name, ranked in runs.items():
            if not ranked:
                continue
            alpha = cfg.w_lex if name == "lexical" else 1 - cfg.w_lex
            vals = np.array([s for _, s in ranked])
            hi, lo, mu, sd = vals.max(), vals.min(), vals.mean(), vals.std() or 1.0
            for d, s in ranked:
                if cfg.norm == "minmax":
                    x = (s - lo) / (hi - lo) if hi > lo else 1.0
                elif cfg.norm == "max":
                    x = s / hi if hi > 0 else 0.0
                elif cfg.norm == "z":
                    x = (s - mu) / sd
                else:  # dbsf: min-max between mean - 3 sd and mean + 3 sd
                    x = (s - (mu - 3 * sd)) / (6 * sd)
                score[d] = score.get(d, 0.0) + alpha * x
            if cfg.norm == "z":  # a document one signal missed gets that signal's floor
                floor = (lo - mu) / sd
                for d in score:
                    if d not in {d2 for d2, _ in ranked}:
                        score[d] += alpha * floor
    return [d for d, _ in sorted(score.items(), key=lambda kv: -kv[1])][:CANDIDATES]


def fuse3(ls: list[tuple[str, float]], v1: list[tuple[str, float]], v2: list[tuple[str, float]], cfg: Config) -> list[str]:
    """DBSF convex fusion of lexical, the first vector run and the feedback vector run."""
    score: dict[str, float] = {}
    vw = 1 - cfg.w_lex
    for ranked, alpha in ((ls, cfg.w_lex), (v1, vw * cfg.prf_keep), (v2, vw * (1 - cfg.prf_keep))):
        if not ranked:
            continue
        vals = np.array([s for _, s in ranked])
        mu, sd = vals.mean(), vals.std() or 1.0
        for d, s in ranked:
            score[d] = score.get(d, 0.0) + alpha * (s - (mu - 3 * sd)) / (6 * sd)
    return [d for d, _ in sorted(score.items(), key=lambda kv: -kv[1])][:CANDIDATES]


def run(col: Collection, lex: Lexical, cfg: Config) -> dict[str, dict[str, float]]:
    runs: dict[str, dict[str, list[str]]] = {"lexical": {}, "vector": {}, "hybrid": {}}
    doc_mean = None
    if cfg.doc_vector:
        if not col.doc_vecs:
            acc: dict[str, list[int]] = {}
            for i, d in enumerate(col.doc_of_chunk):
                acc.setdefault(d, []).append(i)
            for d, ix in acc.items():
                v = col.chunk_vecs[ix].mean(axis=0)
                col.doc_vecs[d] = v / (np.linalg.norm(v) or 1.0)
        doc_mean = np.stack([col.doc_vecs[d] for d in col.doc_of_chunk])
    for q, text in col.queries.items():
        ls = top_docs(col, lex.scores(text, cfg), cfg.doc_agg)
        qv = col.query_vecs[q]
        vs_raw = col.chunk_vecs @ qv
        if doc_mean is not None:
            vs_raw = (1 - cfg.doc_vector) * vs_raw + cfg.doc_vector * (doc_mean @ qv)
        if cfg.dense_prf:
            top_chunks = np.argsort(-vs_raw)[:3]
            qv2 = qv + cfg.dense_prf * col.chunk_vecs[top_chunks].mean(axis=0)
            qv2 /= np.linalg.norm(qv2)
            vs_raw = col.chunk_vecs @ qv2
        vs = top_docs(col, vs_raw, "dense")
        runs["lexical"][q] = [d for d, _ in ls]
        runs["vector"][q] = [d for d, _ in vs]
        fused = fuse({"lexical": ls, "vector": vs}, cfg)
        if cfg.prf_vec or cfg.prf_lex:
            top = set(fused[:cfg.prf_docs])
            chunk_ids = [i for i, d in enumerate(col.doc_of_chunk) if d in top]
            vs_first = vs
            if cfg.prf_vec:
                qv2 = qv + cfg.prf_vec * col.chunk_vecs[chunk_ids].mean(axis=0)
                vs = top_docs(col, col.chunk_vecs @ (qv2 / np.linalg.norm(qv2)), "dense")
            if cfg.prf_lex:
                w = lex.query_weights(text)
                for j, x in lex.expansion(chunk_ids, cfg.prf_terms).items():
                    w[j] = w.get(j, 0.0) + cfg.prf_lex * x
                ls = top_docs(col, lex.scores_weighted(w, cfg), cfg.doc_agg)
            fused = fuse3(ls, vs_first, vs, cfg) if cfg.prf_keep else fuse({"lexical": ls, "vector": vs}, cfg)
        runs["hybrid"][q] = fused
    return {m: evaluate(col.qrels, r) for m, r in runs.items()}


EXPERIMENTS: dict[str, Config] = {
    "base (snowball+stop, one field, k1 0.9 b 0.4, RRF 60)": Config(),
    "analyzer: no stopwords": Config(analyzer="snowball-nostop"),
    "analyzer: no stemming": Config(analyzer="nostem"),
    "bm25 k1 1.2 b 0.75": Config(k1=1.2, b=0.75),
    "bm25 k1 1.5 b 0.75": Config(k1=1.5, b=0.75),
    "bm25 k1 1.2 b 0.6": Config(k1=1.2, b=0.6),
    "title weight 2": Config(title_weight=2.0),
    "title weight 0.5": Config(title_weight=0.5),
    "doc agg best + ½ second": Config(doc_agg="sum2"),
    "rrf k 20": Config(rrf_k=20),
    "rrf k 100": Config(rrf_k=100),
    "weighted rrf lexical 0.7": Config(w_lex=0.7),
    "weighted rrf lexical 1.3": Config(w_lex=1.3),
    "convex, min-max 0.3": Config(fusion="convex", w_lex=0.3),
    "long query: top 16 terms": Config(long_query=16),
    "dense prf 0.3": Config(dense_prf=0.3),
    "doc vector 0.3": Config(doc_vector=0.3),
    "convex, min-max 0.5": Config(fusion="convex", norm="minmax", w_lex=0.5),
    "convex, ÷max 0.4": Config(fusion="convex", norm="max", w_lex=0.4),
    "convex, z-score 0.6": Config(fusion="convex", norm="z", w_lex=0.6),
    "convex, DBSF 0.5": Config(fusion="convex", norm="dbsf", w_lex=0.5),
    "DBSF 0.5 + hybrid feedback: vector 0.6, 3 docs": Config(fusion="convex", norm="dbsf", w_lex=0.5, prf_vec=0.6),
    "DBSF 0.5 + feedback: vector 0.6, lexical 0.3": Config(fusion="convex", norm="dbsf", w_lex=0.5, prf_vec=0.6, prf_lex=0.3),
    "DBSF 0.5 + feedback: vector 0.6, lexical 0.1": Config(fusion="convex", norm="dbsf", w_lex=0.5, prf_vec=0.6, prf_lex=0.1),
    "DBSF 0.5 + feedback vector 0.6, 3-way with the first vector run": Config(fusion="convex", norm="dbsf", w_lex=0.5, prf_vec=0.6,
                                                                               prf_keep=0.5),
    "DBSF 0.5 + feedback vector 0.6 + bigrams 0.2": Config(analyzer="bigrams", fusion="convex", norm="dbsf", w_lex=0.5, prf_vec=0.6,
                                                           bigram_weight=0.2),
    "chosen: DBSF 0.5 + feedback vector 0.6, 3 docs, b 0.75": Config(fusion="convex", norm="dbsf", w_lex=0.5, prf_vec=0.6, b=0.75),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="run only experiments whose name contains this")
    parser.add_argument("--grid", default="", help='JSON object of Config fields to lists, e.g. {"k1":[0.9,1.2]}')
    args = parser.parse_args()
    loaded: list[Encoder] = []

    def encoder() -> Encoder:
        if not loaded:
            loaded.append(Encoder("all-MiniLM-L6-v2", default_model_dir(), "cpu"))
        return loaded[0]

    cols = [prepare(n, encoder) for n in ("scifact", "cranfield")]
    lexicals: dict[tuple[str, str, float], Lexical] = {}
    experiments = dict(EXPERIMENTS)
    if args.grid:
        grid = json.loads(args.grid)
        experiments = {json.dumps(dict(zip(grid, vals, strict=True))): replace(Config(), **dict(zip(grid, vals, strict=True)))
                       for vals in itertools.product(*grid.values())}
    print("| experiment | " + " | ".join(f"{c.name} {m}" for c in cols for m in ("lex", "vec", "hybrid", "R@100")) + " |")
    print("|---" * (1 + 4 * len(cols)) + "|")
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for name, cfg in experiments.items():
        if args.only and args.only not in name:
            continue
        cells = []
        for col in cols:
            key = (col.name, cfg.analyzer, cfg.title_weight)
            if key not in lexicals:
                lexicals[key] = Lexical(col, cfg.analyzer, cfg.title_weight)
            r = results.setdefault(name, {})[col.name] = run(col, lexicals[key], cfg)
            cells += [f"{r['lexical']['ndcg@10']:.4f}", f"{r['vector']['ndcg@10']:.4f}", f"**{r['hybrid']['ndcg@10']:.4f}**",
                      f"{r['hybrid']['recall@100']:.4f}"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    best = {c.name: max(results, key=lambda n: results[n][c.name]["hybrid"]["ndcg@10"]) for c in cols} if results else {}
    both = [n for n in results if all(results[n][c.name]["hybrid"]["ndcg@10"] >= results[next(iter(results))][c.name]["hybrid"]["ndcg@10"]
                                       for c in cols)]
    print(json.dumps({"experiments": len(results), "best_per_collection": best, "helps_both_vs_first_row": both,
                      "hybrid_ndcg@10": {n: {c: r[c]["hybrid"]["ndcg@10"] for c in r} for n, r in results.items()}}))


if __name__ == "__main__":
    main()
