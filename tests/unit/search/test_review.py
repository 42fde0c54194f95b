"""The weekly review's pure parts: emerging clusters, the questions it asks, the rendering."""

from __future__ import annotations

import datetime as dt

from services.search.review import LABEL_CHARS, ReviewData, emerging, label, questions, render_review


def test_the_review_always_asks_three_questions() -> None:
    qs = questions([{"query": "quantum"}], [{"name": "espresso, grinder"}], [{"a": "A", "b": "B"}], [])
    assert len(qs) == 3 and "quantum" in qs[0] and "espresso" in qs[1] and '"A"' in qs[2]
    assert len(questions([], [], [], [])) == 3


def test_emerging_clusters() -> None:
    rows = [{"name": "new", "size": 4, "fresh": 3}, {"name": "growing", "size": 23, "fresh": 3},
            {"name": "where the week went", "size": 45, "fresh": 6}, {"name": "quiet", "size": 900, "fresh": 2},
            {"name": "one", "size": 2, "fresh": 1}]
    assert [c["name"] for c in emerging(rows)] == ["where the week went", "growing", "new"]


def test_a_huge_title_or_query_is_quoted_as_a_short_label() -> None:
    huge = "title " + "#" * 100_000
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    d = ReviewData(new=[{"title": huge, "path": "/n/a.md", "kind": "", "cluster": "x\n" * 500}],
                   links=[{"a": huge, "b": "short", "score": 0.8}], gaps=[{"query": "q " * 50_000, "best": 0.1, "asked": False, "times": 2}])
    md, _ = render_review(d, now - dt.timedelta(days=7), now, "", 90)
    assert len(md) < 4_000 and "## Questions to explore" in md, len(md)
    assert f"- title {'#' * (LABEL_CHARS - 7)}… `a.md`" in md  # cut to LABEL_CHARS with an ellipsis, on one line
    assert label("  a\n\tb  ") == "a b" and label("x" * 10, 5) == "xxxx…"
