"""A progress bar over an ingest job, for the command line and the evaluations: files and chunks per second, and when
the import will be done."""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.client import Client
from shared.gen.tessera.v1 import ingest_pb2

console = Console(soft_wrap=not sys.stdout.isatty())  # no hard wraps in pipes and logs

#: Rates are measured over this many seconds of the latest updates, so they follow a change of pace.
WINDOW_S = 20.0
#: Without a terminal (a pipe, a log), one plain line this often.
LINE_EVERY_S = 10.0


@dataclass
class Pace:
    """Files and chunks per second of an ingest job over the last ``window_s``, and the seconds it has left.

    Fed each update of the job with the time it arrived. Chunks are the last stage (a file is searchable when its chunks
    are embedded), so the time left is the chunks still to embed over the chunk rate; while files are still being parsed,
    the job's chunk total is extrapolated from the files parsed so far."""

    window_s: float = WINDOW_S
    samples: deque[tuple[float, int, int]] = field(default_factory=deque)
    files: int = 0
    files_done: int = 0
    chunks_total: int = 0
    chunks_done: int = 0

    def update(self, job: ingest_pb2.IngestJob, now: float) -> None:
        c = job.counts
        self.files, self.files_done = c.files, c.files - c.queued
        self.chunks_total, self.chunks_done = c.chunks, c.chunks_embedded
        self.samples.append((now, self.files_done, self.chunks_done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def _rate(self, index: int) -> float | None:
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        span = last[0] - first[0]
        return (last[index] - first[index]) / span if span > 0 else None

    @property
    def files_per_s(self) -> float | None:
        return self._rate(1)

    @property
    def chunks_per_s(self) -> float | None:
        return self._rate(2)

    @property
    def expected_chunks(self) -> int:
        """The job's chunks: counted once every file is parsed, extrapolated from the parsed files before."""
        if self.files_done >= self.files or self.files_done == 0:
            return self.chunks_total
        return max(self.chunks_total, round(self.chunks_total * self.files / self.files_done))

    @property
    def eta_s(self) -> float | None:
        """Seconds until every chunk is embedded at the current rate; None until there is a rate; 0 when done."""
        left = self.expected_chunks - self.chunks_done
        if self.files and self.files_done >= self.files and left <= 0:
            return 0.0
        rate = self.chunks_per_s
        return left / rate if rate else None

    def line(self) -> str:
        return (f"files {self.files_done}/{self.files} ({_rate(self.files_per_s)}) · chunks {self.chunks_done}/"
                f"{self.chunks_total or '?'} embedded ({_rate(self.chunks_per_s)}) · ETA {_clock(self.eta_s)}")


def _rate(value: float | None) -> str:
    return "–/s" if value is None else f"{value:.1f}/s"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


async def ingest_with_progress(client: Client, path: str | Path, project: str, quiet: bool = False) -> ingest_pb2.IngestJob:
    """Ingest a file or folder and wait for it, showing files done and chunks embedded, each per second, and the time
    left unless ``quiet``; without a terminal, a plain line every ``LINE_EVERY_S``."""
    pace = Pace()
    live = console.is_terminal and not quiet
    printed = [time.monotonic()]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=console, disable=not live) as bar:
        files = bar.add_task("files", total=None, rate="–/s", eta="–")
        chunks = bar.add_task("chunks embedded", total=None, rate="–/s", eta="–")

        def progress(job: ingest_pb2.IngestJob) -> None:
            now = time.monotonic()
            pace.update(job, now)
            eta = _clock(pace.eta_s)
            bar.update(files, completed=pace.files_done, total=pace.files, rate=_rate(pace.files_per_s), eta=eta)
            bar.update(chunks, completed=pace.chunks_done, total=pace.expected_chunks or None, rate=_rate(pace.chunks_per_s), eta=eta)
            if not live and not quiet and now - printed[0] >= LINE_EVERY_S:
                printed[0] = now
                console.print(pace.line(), highlight=False)

        return await client.ingest(path, project=project, on_progress=progress)
