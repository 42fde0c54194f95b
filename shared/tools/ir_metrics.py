"""Retrieval metrics as BEIR reports them (pytrec_eval conventions). No I/O.

``qrels``: query id -> {doc id: relevance}; ``run``: query id -> doc ids in rank order.
nDCG uses linear gains (relevance as is), as pytrec_eval's ndcg_cut does.
"""

from __future__ import annotations

import math


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at_k(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    rel = {d for d, r in relevant.items() if r > 0}
    return len(rel & set(ranked[:k])) / len(rel) if rel else 0.0


def mrr_at_k(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate(qrels: dict[str, dict[str, int]], run: dict[str, list[str]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@100 and MRR@10 over the judged queries (a query missing from run scores 0)."""
    queries = [q for q, rel in qrels.items() if any(r > 0 for r in rel.values())]
    if not queries:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0}
    n = len(queries)
    return {
        "ndcg@10": round(sum(ndcg_at_k(run.get(q, []), qrels[q]) for q in queries) / n, 4),
        "recall@100": round(sum(recall_at_k(run.get(q, []), qrels[q]) for q in queries) / n, 4),
        "mrr@10": round(sum(mrr_at_k(run.get(q, []), qrels[q]) for q in queries) / n, 4),
    }
