"""A progress bar over an ingest job, for the command line and the evaluations."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.client import Client
from shared.gen.tessera.v1 import ingest_pb2

console = Console(soft_wrap=not sys.stdout.isatty())  # no hard wraps in pipes and logs


async def ingest_with_progress(client: Client, path: str | Path, project: str, quiet: bool = False) -> ingest_pb2.IngestJob:
    """Ingest a file or folder and wait for it, showing files done and chunks embedded unless ``quiet``."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=quiet) as bar:
        files = bar.add_task("files", total=None)
        chunks = bar.add_task("chunks embedded", total=None)

        def progress(job: ingest_pb2.IngestJob) -> None:
            c = job.counts
            bar.update(files, completed=c.files - c.queued, total=c.files)
            bar.update(chunks, completed=c.chunks_embedded, total=c.chunks or None)

        return await client.ingest(path, project=project, on_progress=progress)
