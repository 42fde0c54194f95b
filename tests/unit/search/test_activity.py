"""The search log's judgement of a search, and recency."""

from __future__ import annotations

import datetime as dt

import pytest

from services.search.activity import logged_search
from services.search.server import recency_factor
from shared.gen.tessera.v1 import common_pb2, search_pb2


def test_recency_halves_per_half_life() -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert recency_factor(now, now, 30) == 1.0
    assert recency_factor(now - dt.timedelta(days=30), now, 30) == pytest.approx(0.5)
    assert recency_factor(now - dt.timedelta(days=90), now, 30) == pytest.approx(0.125)
    assert recency_factor(now + dt.timedelta(days=1), now, 30) == 1.0  # a clock ahead never boosts


def test_searches_are_logged_with_whether_they_found_something_close() -> None:
    req = search_pb2.SearchRequest(query="q", filters=common_pb2.Filters(project="p"))
    hit = search_pb2.Hit(source=common_pb2.SourceRef(document_id="d1"), signals=[search_pb2.Signal(name="vector", score=0.3, rank=1)])
    far = logged_search(req, search_pb2.SearchResponse(hits=[hit]), floor=0.4)
    assert not far.answered and far.top_score == pytest.approx(0.3) and far.documents == [("d1", 1)] and far.project == "p"
    hit.signals[0].score = 0.7
    assert logged_search(req, search_pb2.SearchResponse(hits=[hit]), floor=0.4).answered
    assert not logged_search(req, search_pb2.SearchResponse(), floor=0.4).answered
