"""Fusion: per-document best chunk, normalised score sums (DBSF), reciprocal rank sums, tie order, and snippets."""

from __future__ import annotations

import random
import statistics

import pytest

from services.search.fusion import Candidate, fuse_rrf, fuse_scores, per_document, snippet


def c(chunk: str, doc: str, score: float = 1.0) -> Candidate:
    return Candidate(chunk, doc, score)


def test_per_document_keeps_each_documents_best_chunk_in_rank_order() -> None:
    ranked = [c("a1", "A"), c("b1", "B"), c("a2", "A"), c("c1", "C"), c("b2", "B")]
    assert [x.chunk_id for x in per_document(ranked)] == ["a1", "b1", "c1"]


def test_rrf_adds_reciprocal_ranks_over_signals() -> None:
    lexical = [c("a1", "A", 9.0), c("b1", "B", 5.0)]
    vector = [c("b2", "B", 0.9), c("c1", "C", 0.8), c("a3", "A", 0.1)]
    fused = fuse_rrf({"lexical": lexical, "vector": vector}, k=60, limit=10)
    scores = {f.document_id: f.score for f in fused}
    assert scores["A"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["B"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["C"] == pytest.approx(1 / 62)
    assert [f.document_id for f in fused] == ["B", "A", "C"]
    b = fused[0]
    assert b.signals == {"lexical": (5.0, 2), "vector": (0.9, 1)}
    assert b.chunk_id == "b2", "the hit keeps the chunk that ranked best in any signal"


def test_dbsf_normalises_each_signal_then_adds_weighted_shares() -> None:
    lexical = [c("a1", "A", 12.0), c("b1", "B", 6.0), c("a2", "A", 5.0), c("d1", "D", 3.0)]
    vector = [c("b2", "B", 0.8), c("c1", "C", 0.7), c("a3", "A", 0.2)]
    fused = fuse_scores({"lexical": lexical, "vector": vector}, {"lexical": 0.3, "vector": 0.7}, limit=10)

    def norm(x: float, values: list[float]) -> float:
        mu, sd = statistics.fmean(values), statistics.pstdev(values)
        return (x - (mu - 3 * sd)) / (6 * sd)

    lex, vec = [12.0, 6.0, 3.0], [0.8, 0.7, 0.2]  # per document: the best chunk's score
    expected = {"A": 0.3 * norm(12.0, lex) + 0.7 * norm(0.2, vec), "B": 0.3 * norm(6.0, lex) + 0.7 * norm(0.8, vec),
                "C": 0.7 * norm(0.7, vec), "D": 0.3 * norm(3.0, lex)}
    assert {f.document_id: f.score for f in fused} == pytest.approx(expected)
    assert [f.document_id for f in fused] == sorted(expected, key=lambda d: -expected[d])
    b = next(f for f in fused if f.document_id == "B")
    assert b.contributions == pytest.approx({"lexical": 0.3 * norm(6.0, lex), "vector": 0.7 * norm(0.8, vec)})
    assert sum(b.contributions.values()) == pytest.approx(b.score) and b.signals == {"lexical": (6.0, 2), "vector": (0.8, 1)}


def test_dbsf_fuses_by_the_ranking_score_and_reports_the_raw_one() -> None:
    fed = [Candidate("x", "X", 0.30, rank_score=0.9), Candidate("y", "Y", 0.50, rank_score=0.4)]
    fused = fuse_scores({"vector": fed}, {"vector": 1.0})
    assert [f.document_id for f in fused] == ["X", "Y"] and fused[0].signals["vector"] == (0.30, 1)
    assert fuse_scores({"lexical": [], "vector": []}, {}) == []
    single = fuse_scores({"lexical": [c("only", "O", 4.0)]}, {"lexical": 0.5})
    assert single[0].score == pytest.approx(0.5 * 0.5), "one value: σ is taken as 1, the value maps to the middle"


def test_ties_keep_the_earlier_best_rank_and_the_limit_cuts() -> None:
    fused = fuse_rrf({"lexical": [c("x", "X"), c("y", "Y")], "vector": [c("y2", "Y"), c("x2", "X")]}, limit=1)
    assert len(fused) == 1 and fused[0].document_id == "X"  # equal sums: X reached rank 1 first
    assert fuse_rrf({}, limit=5) == []


def test_a_smaller_k_rewards_top_ranks_more() -> None:
    sharp = fuse_rrf({"s": [c("a", "A"), c("b", "B")]}, k=1)
    assert sharp[0].score / sharp[1].score == pytest.approx((1 / 2) / (1 / 3))


def test_snippet_picks_the_best_matching_lines_with_their_line_numbers() -> None:
    text = "intro line\nnothing here\nthe kettle needs descaling\nuse citric acid\nunrelated end"
    body, lo, hi = snippet(text, "descale kettle", line_start=10)
    assert "kettle needs descaling" in body
    assert (lo, hi) == (11, 13)  # the best line ± one, 1-based in the source


def test_snippet_cuts_long_text_at_a_word() -> None:
    body, lo, hi = snippet("word " * 200, "word", line_start=1, max_chars=50)
    assert len(body) <= 52 and body.endswith("…") and lo == hi == 1


def test_fusion_equals_its_definition_on_random_rankings() -> None:
    """Each document scores the sum of its signals' shares (of its best chunk in each); order by score, then by the
    document's best rank in any signal; the hit's chunk is the one with that best rank (the first signal's on a tie)."""
    rng = random.Random(31)
    for _ in range(500):
        signals = {name: [Candidate(f"c{rng.randint(0, 40)}", f"d{rng.randint(0, 15)}", round(rng.random(), 2),
                                    (("w", 1.0),) if name == "lexical" and rng.random() < 0.5 else ())
                          for _ in range(rng.randint(0, 30))]
                   for name in rng.sample(["lexical", "vector"], rng.randint(1, 2))}
        limit = rng.randint(1, 20)
        score: dict[str, float] = {}
        best: dict[str, tuple[int, str]] = {}
        seen: dict[str, dict[str, tuple[float, int]]] = {}
        for name, ranked in signals.items():
            for rank, cand in enumerate(per_document(ranked), start=1):
                score[cand.document_id] = score.get(cand.document_id, 0.0) + 1 / (60 + rank)
                seen.setdefault(cand.document_id, {})[name] = (cand.score, rank)
                if rank < best.get(cand.document_id, (1 << 30, ""))[0]:
                    best[cand.document_id] = (rank, cand.chunk_id)
        got = fuse_rrf(signals, k=60, limit=limit)
        assert [f.document_id for f in got] == sorted(score, key=lambda d: (-score[d], best[d][0]))[:limit]
        for f in got:
            assert f.chunk_id == best[f.document_id][1] and f.signals == seen[f.document_id]
            assert f.score == pytest.approx(score[f.document_id])
