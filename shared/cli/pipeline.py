"""`tessera ingest`, `tessera search`, `tessera related`: the knowledge pipeline from a terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.errors import DependencyError
from shared.gen.tessera.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from shared.runtime.channels import Channels
from shared.runtime.config import Settings

console = Console(soft_wrap=not sys.stdout.isatty())  # no hard wraps in pipes and logs
MODES = {"hybrid": search_pb2.SEARCH_MODE_HYBRID, "lexical": search_pb2.SEARCH_MODE_LEXICAL, "vector": search_pb2.SEARCH_MODE_VECTOR}


def _rpc_error(service: str, exc: grpc.aio.AioRpcError) -> DependencyError:
    return DependencyError(f"{service}: {exc.details() or exc.code().name} ({exc.code().name})")


async def ingest(settings: Settings, path: str, project: str, quiet: bool = False) -> ingest_pb2.IngestJob:
    channels = Channels(settings)
    try:
        stub = await channels.stub("ingest", ingest_pb2_grpc.IngestServiceStub)
        try:
            job = await stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(Path(path).expanduser().resolve()), project=project),
                                        timeout=60)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, disable=quiet) as bar:
                files = bar.add_task("files", total=job.counts.files)
                chunks = bar.add_task("chunks embedded", total=None)
                watch = stub.WatchJob(ingest_pb2.GetJobRequest(job_id=job.job_id, include_files=True), timeout=24 * 3600)
                async for job in watch:
                    c = job.counts
                    bar.update(files, completed=c.files - c.queued)
                    bar.update(chunks, completed=c.chunks_embedded, total=c.chunks or None)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("ingest", exc) from None
    finally:
        await channels.close()
    return job


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    job = asyncio.run(ingest(settings, args.path, args.project))
    c = job.counts
    console.print(f"[bold]{c.files}[/] files: {c.embedded} embedded, {c.unchanged} unchanged, {c.deleted} removed, "
                  f"[{'red' if c.failed else 'green'}]{c.failed} failed[/]; {c.chunks_embedded}/{c.chunks} chunks embedded")
    warned = [f for f in job.files if f.warnings]
    failed = [f for f in job.files if f.state == ingest_pb2.FILE_STATE_FAILED]
    for f in failed:
        console.print(f"  [red]✗[/] {f.path}: {f.reason}", highlight=False)
    for f in warned:
        console.print(f"  [yellow]![/] {f.path}: {'; '.join(f.warnings)}", highlight=False)
    return 1 if failed else 0


async def call_search(settings: Settings, method: str, request: object) -> object:
    """One call to the search service, with its error turned into a one-line DependencyError."""
    channels = Channels(settings)
    try:
        stub = await channels.stub("search", search_pb2_grpc.SearchServiceStub)
        try:
            return await getattr(stub, method)(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise _rpc_error("search", exc) from None
    finally:
        await channels.close()


async def search(settings: Settings, query: str, *, project: str = "", types: list[str] | None = None, tags: list[str] | None = None,
                 mode: str = "hybrid", top_k: int = 10) -> search_pb2.SearchResponse:
    request = search_pb2.SearchRequest(query=query, top_k=top_k, mode=MODES[mode],
                                       filters=common_pb2.Filters(project=project, types=types or [], tags=tags or []))
    return await call_search(settings, "Search", request)  # type: ignore[return-value]


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    reply = asyncio.run(search(settings, args.query, project=args.project, types=args.type, tags=args.tag, mode=args.mode,
                               top_k=args.top_k))
    if not reply.hits:
        console.print("no matches")
        return 1
    for rank, hit in enumerate(reply.hits, start=1):
        src = hit.source
        signals = "  ".join(f"{s.name} {s.score:.3f} (#{s.rank})" if s.rank else f"{s.name} –" for s in hit.signals)
        console.print(f"[bold]{rank}. {src.title}[/]  score {hit.score:.4f}   {signals}", highlight=False)
        console.print(f"   [cyan]{src.path}:{src.line_start}-{src.line_end}[/]" + (f"  § {' / '.join(src.heading_path)}" if src.heading_path else ""),
                      highlight=False)
        for line in hit.snippet.splitlines():
            console.print(f"   │ {line}", highlight=False, markup=False)
    console.print(f"[dim]{reply.took_ms:.0f} ms{' (cached)' if reply.cached else ''}, index generation {reply.index_generation}[/]")
    return 0


async def related(settings: Settings, doc: str, limit: int) -> search_pb2.RelatedResponse:
    as_path = "/" in doc or Path(doc).exists()
    request = search_pb2.RelatedRequest(path=str(Path(doc).resolve()), limit=limit) if as_path else \
        search_pb2.RelatedRequest(document_id=doc, limit=limit)
    return await call_search(settings, "Related", request)  # type: ignore[return-value]


def cmd_related(settings: Settings, args: argparse.Namespace) -> int:
    reply = asyncio.run(related(settings, args.doc, args.limit))
    table = Table()
    for col in ("score", "title", "path"):
        table.add_column(col)
    for r in reply.related:
        table.add_row(f"{r.score:.3f}", r.title, r.path)
    console.print(table if reply.related else "no related documents above the threshold")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("ingest", help="ingest a file or a folder, with live progress")
    p.add_argument("path")
    p.add_argument("--project", default="", help="project the documents belong to (default: from frontmatter)")
    p.set_defaults(fn=cmd_ingest)
    p = sub.add_parser("search", help="hybrid search with scores, signals and sources")
    p.add_argument("query")
    p.add_argument("--project", default="")
    p.add_argument("--type", action="append", default=[], help="document type (repeatable)")
    p.add_argument("--tag", action="append", default=[], help="required tag (repeatable)")
    p.add_argument("--mode", choices=sorted(MODES), default="hybrid")
    p.add_argument("--top-k", type=int, default=10)
    p.set_defaults(fn=cmd_search)
    p = sub.add_parser("related", help="documents linked to a document (by path or id)")
    p.add_argument("doc")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(fn=cmd_related)
