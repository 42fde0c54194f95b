"""`tessera ingest`'s pace: files and chunks per second over a sliding window, and the time left."""

from __future__ import annotations

import pytest

from shared.gen.tessera.v1 import ingest_pb2
from shared.tools.progress import Pace, _clock


def job(files: int, queued: int, chunks: int, embedded: int) -> ingest_pb2.IngestJob:
    return ingest_pb2.IngestJob(counts=ingest_pb2.JobCounts(files=files, queued=queued, chunked=files - queued, chunks=chunks,
                                                            chunks_embedded=embedded))


def test_rates_and_eta_follow_the_job() -> None:
    pace = Pace(window_s=20)
    pace.update(job(100, 100, 0, 0), 0.0)
    assert pace.files_per_s is None and pace.eta_s is None and "ETA –" in pace.line()
    pace.update(job(100, 80, 40, 10), 10.0)  # 20 files parsed, 40 chunks stored, 10 embedded
    assert pace.files_per_s == pytest.approx(2.0) and pace.chunks_per_s == pytest.approx(1.0)
    assert pace.expected_chunks == 200, "extrapolated from the files parsed so far"
    assert pace.eta_s == pytest.approx(190.0)
    assert pace.line() == "files 20/100 (2.0/s) · chunks 10/40 embedded (1.0/s) · ETA 3:10"


def test_the_rate_forgets_what_is_older_than_its_window() -> None:
    pace = Pace(window_s=20)
    pace.update(job(10, 0, 1000, 0), 0.0)
    pace.update(job(10, 0, 1000, 500), 10.0)  # a fast start: 50/s
    for t in range(11, 61):  # then 10/s
        pace.update(job(10, 0, 1000, 500 + 10 * (t - 10)), float(t))
    assert pace.chunks_per_s == pytest.approx(10.0)
    assert pace.eta_s == pytest.approx(0.0) and pace.chunks_done == 1000


def test_done_and_stalled() -> None:
    pace = Pace()
    pace.update(job(3, 0, 6, 6), 0.0)
    assert pace.eta_s == 0.0
    stalled = Pace()
    stalled.update(job(3, 0, 6, 2), 0.0)
    stalled.update(job(3, 0, 6, 2), 5.0)
    assert stalled.chunks_per_s == 0.0 and stalled.eta_s is None, "no progress: no ETA rather than a division by zero"


def test_clock() -> None:
    assert [_clock(None), _clock(0), _clock(59.6), _clock(3599), _clock(3661)] == ["–", "0:00", "1:00", "59:59", "1:01:01"]
