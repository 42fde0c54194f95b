"""The weekly review's pure parts: emerging clusters, the questions it asks, the rendering."""

from __future__ import annotations

from services.search.review import emerging, questions


def test_the_review_always_asks_three_questions() -> None:
    qs = questions([{"query": "quantum"}], [{"name": "espresso, grinder"}], [{"a": "A", "b": "B"}], [])
    assert len(qs) == 3 and "quantum" in qs[0] and "espresso" in qs[1] and '"A"' in qs[2]
    assert len(questions([], [], [], [])) == 3


def test_emerging_clusters() -> None:
    rows = [{"name": "new", "size": 4, "fresh": 3}, {"name": "growing", "size": 23, "fresh": 3},
            {"name": "where the week went", "size": 45, "fresh": 6}, {"name": "quiet", "size": 900, "fresh": 2},
            {"name": "one", "size": 2, "fresh": 1}]
    assert [c["name"] for c in emerging(rows)] == ["where the week went", "growing", "new"]
