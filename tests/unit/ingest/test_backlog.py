"""The background backlog's ETA (services/ingest/pipeline.py backlog): the work left at the recent pace."""

from __future__ import annotations

from services.ingest.pipeline import backlog
from shared.cli.main import backlog_lines, fmt_duration


def test_the_eta_is_the_work_left_at_the_recent_pace() -> None:
    b = backlog(chunks_waiting=1200, chunks_per_minute=600.0, enrich_waiting=30, enrich_deferred=400, enriched_per_minute=2.0)
    assert b.embed_eta_s == 120.0 and b.enrich_eta_s == 900.0 and b.enrich_deferred == 400


def test_no_pace_or_nothing_waiting_gives_no_eta() -> None:
    assert backlog(chunks_waiting=50, chunks_per_minute=0.0, enrich_waiting=0, enrich_deferred=0, enriched_per_minute=3.0).embed_eta_s == 0
    assert backlog(chunks_waiting=0, chunks_per_minute=90.0, enrich_waiting=0, enrich_deferred=0, enriched_per_minute=0.0).enrich_eta_s == 0


def test_the_cli_says_it_in_sentences() -> None:
    text = backlog_lines({"chunks_waiting": 1200, "chunks_per_minute": 600.0, "embed_eta_s": 120.0, "enrich_waiting": 30,
                          "enrich_deferred": 400, "enriched_per_minute": 2.0, "enrich_eta_s": 900.0})
    assert "1200 chunks wait" in text and "about 2 min" in text and "about 15 min" in text and "400 more of large imports" in text
    assert "nothing waits" in backlog_lines({"chunks_waiting": 0, "chunks_per_minute": 0, "embed_eta_s": 0, "enrich_waiting": 5,
                                             "enrich_deferred": 0, "enriched_per_minute": 0, "enrich_eta_s": 0})
    assert backlog_lines({"error": "ingest did not answer: x"}).startswith("background work: ingest did not answer")
    assert [fmt_duration(s) for s in (30, 600, 7200)] == ["30 s", "10 min", "2.0 h"]
