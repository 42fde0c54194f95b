"""Rank fusion: per-document best chunk, reciprocal rank sums, tie order, and snippets."""

from __future__ import annotations

import pytest

from services.search.fusion import Candidate, fuse_rrf, per_document, snippet


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
