"""The load generator's pure parts: durations, bounds, histogram and percentiles."""

from __future__ import annotations

import pytest

from shared.tools.load import MAX_TOTAL, LoadError, Results, Target, histogram, parse_duration, run_load, summarize


def test_durations() -> None:
    assert parse_duration("30s") == 30 and parse_duration("500ms") == 0.5 and parse_duration("2m") == 120 and parse_duration("1.5") == 1.5
    with pytest.raises(LoadError, match="not a duration"):
        parse_duration("soon")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"total": MAX_TOTAL + 1}, "-n must be between"),
    ({"total": 0}, "-n must be between"),
    ({"duration": 7200.0}, "-z must be above 0"),
    ({"total": 5, "rps": 0.0}, "must be positive"),
])
async def test_load_is_bounded(kwargs: dict[str, object], words: str) -> None:
    target = Target(method=None, path="/a.B/C", requests=[b""])  # type: ignore[arg-type]
    with pytest.raises(LoadError, match=words):
        await run_load(target, "127.0.0.1:1", concurrency=1, **kwargs)  # type: ignore[arg-type]


def test_histogram_and_percentiles() -> None:
    lat = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    buckets = histogram(lat)
    assert len(buckets) == 10 and sum(b["count"] for b in buckets) == 100 and buckets[-1]["le_ms"] == pytest.approx(100)
    r = Results(latencies=lat, elapsed=2.0)
    r.codes["OK"] = 100
    s = summarize(r)
    assert s["count"] == 100 and s["rps"] == 50 and s["latency_ms"]["p50"] == pytest.approx(51) and s["latency_ms"]["p99"] == pytest.approx(100)
    assert s["latency_ms"]["min"] == pytest.approx(1) and s["status_codes"] == {"OK": 100}
    assert histogram([]) == [] and summarize(Results())["count"] == 0
