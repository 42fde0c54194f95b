"""`tessera ingest`, `tessera search`, `tessera related`: the knowledge pipeline from a terminal."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.table import Table

from shared.client import Client
from shared.client.core import MODES
from shared.contracts import enrich_enabled
from shared.gen.tessera.v1 import ingest_pb2, search_pb2
from shared.runtime.config import Settings
from shared.tools import upload
from shared.tools.progress import console, ingest_with_progress


async def ingest(settings: Settings, path: str, project: str, quiet: bool = False) -> ingest_pb2.IngestJob:
    async with Client(settings) as client:
        return await ingest_with_progress(client, path, project, quiet)


async def follow(settings: Settings, job_id: str) -> ingest_pb2.IngestJob:
    async with Client(settings) as client:
        async for _ in client.watch_job(job_id, include_files=False):
            pass
        return await client.job(job_id, include_files=True)


def cmd_upload(settings: Settings, args: argparse.Namespace) -> int:
    """Send a file through the gateway's resumable upload (a broken one goes on where it stopped), then follow its job."""
    first = [True]

    def progress(sent: int, total: int, resumed: bool) -> None:
        if first[0] and resumed:
            console.print(f"resuming at {sent / max(total, 1):.0%} ({sent} of {total} bytes already there)", highlight=False)
        first[0] = False
        console.print(f"uploaded {sent / max(total, 1):.0%} ({sent}/{total} bytes)", highlight=False)

    job_id = upload.upload(settings, Path(args.path), args.project, int(args.part_mb * 1024 * 1024), progress)
    console.print(f"uploaded; ingest job {job_id}")
    return report(settings, asyncio.run(follow(settings, job_id)), args)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    if args.upload:
        return cmd_upload(settings, args)
    return report(settings, asyncio.run(ingest(settings, args.path, args.project)), args)


def report(settings: Settings, job: ingest_pb2.IngestJob, args: argparse.Namespace) -> int:
    c = job.counts
    console.print(f"[bold]{c.files}[/] files: {c.embedded} embedded, {c.unchanged} unchanged, {c.deleted} removed, "
                  f"[{'red' if c.failed else 'green'}]{c.failed} failed[/]; {c.chunks_embedded}/{c.chunks} chunks embedded")
    warned = [f for f in job.files if f.warnings]
    failed = [f for f in job.files if f.state == ingest_pb2.FILE_STATE_FAILED]
    for f in failed:
        console.print(f"  [red]✗[/] {f.path}: {f.reason}", highlight=False)
    for f in warned:
        console.print(f"  [yellow]![/] {f.path}: {'; '.join(f.warnings)}", highlight=False)
    knowledge = settings.knowledge
    if 0 < knowledge.enrich_import_max < c.files and enrich_enabled(knowledge.enrich, args.project or job.project):
        console.print(f"enrichment of these {c.files} files waits until each is opened or cited (over TESSERA_ENRICH_IMPORT_MAX "
                      f"{knowledge.enrich_import_max}): `tessera enrich --deferred{' --project ' + args.project if args.project else ''}` "
                      "enriches them all now", highlight=False)
    return 1 if failed else 0


async def search(settings: Settings, query: str, *, project: str = "", types: list[str] | None = None, tags: list[str] | None = None,
                 mode: str = "hybrid", top_k: int = 10, explain: bool = False, recency: float = 0.0) -> search_pb2.SearchResponse:
    async with Client(settings) as client:
        return await client.search(query, project=project, types=types or [], tags=tags or [], mode=mode, top_k=top_k,
                                   explain=explain, recency_half_life_days=recency)


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    reply = asyncio.run(search(settings, args.query, project=args.project, types=args.type, tags=args.tag, mode=args.mode,
                               top_k=args.top_k, explain=args.explain, recency=args.recency_half_life))
    if not reply.hits:
        console.print("no matches")
        return 1
    for rank, hit in enumerate(reply.hits, start=1):
        src = hit.source
        signals = "  ".join(f"{s.name} {s.score:.3f} (#{s.rank})" if s.rank else f"{s.name} –" for s in hit.signals)
        console.print(f"[bold]{rank}. {src.title}[/]  score {hit.score:.4f}   {signals}", highlight=False)
        console.print(f"   [cyan]{src.path}:{src.line_start}-{src.line_end}[/]" + (f"  § {' / '.join(src.heading_path)}" if src.heading_path else ""),
                      highlight=False)
        e = hit.enrichment
        if e.state == "enriched":
            console.print(f"   [magenta]{e.kind}[/]" + (f"  #{' #'.join(e.tags)}" if e.tags else "")
                          + (f"  [dim]{', '.join(x.name for x in e.entities)}[/]" if e.entities else ""), highlight=False)
        for line in hit.snippet.splitlines():
            console.print(f"   │ {line}", highlight=False, markup=False)
        if args.explain:
            for s in hit.signals:
                if s.name == "recency":
                    console.print(f"   [dim]recency: × {s.score:.4f} (half-life {args.recency_half_life:g} days; updated "
                                  f"{hit.updated_at.ToDatetime():%Y-%m-%d}), adds {s.contribution:+.5f}[/]", highlight=False)
                    continue
                line = (f"   [dim]{s.name}: raw {s.score:.4f}, rank {s.rank or '–'}, adds {s.contribution:.5f}"
                        + (" ← " + ", ".join(f"{t.term} {t.weight:.3f}" for t in s.terms) if s.terms else "") + "[/]")
                console.print(line, highlight=False)
    console.print(f"[dim]{reply.took_ms:.0f} ms{' (cached)' if reply.cached else ''}, index generation {reply.index_generation}[/]")
    if reply.degraded:
        console.print(reply.degraded, style="yellow", highlight=False, markup=False)
    return 0


async def related(settings: Settings, doc: str, limit: int) -> search_pb2.RelatedResponse:
    async with Client(settings) as client:
        if "/" in doc or Path(doc).exists():
            return await client.related(path=str(Path(doc).resolve()), limit=limit)
        return await client.related(doc, limit=limit)


def cmd_related(settings: Settings, args: argparse.Namespace) -> int:
    reply = asyncio.run(related(settings, args.doc, args.limit))
    table = Table()
    for col in ("score", "title", "path"):
        table.add_column(col)
    for r in reply.related:
        table.add_row(f"{r.score:.3f}", r.title, r.path)
    console.print(table if reply.related else "no related documents above the threshold")
    return 0


def cmd_delete(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> ingest_pb2.DeleteDocumentResponse:
        async with Client(settings) as client:
            return await client.delete_document(args.document_id)

    reply = asyncio.run(run())
    if not reply.deleted:
        console.print(f"[red]no document {args.document_id}[/]", highlight=False)
        return 1
    console.print(f"[green]✓[/] deleted {args.document_id}" + (" and its file (a capture)" if reply.file_removed else
                  "; its file stays where it was imported from (ingesting that folder again brings it back)"), highlight=False)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="ingest a file or a folder, with live progress")
    p.add_argument("path")
    p.add_argument("--project", default="", help="project the documents belong to (default: from frontmatter)")
    p.add_argument("--upload", action="store_true", help="send the file through the gateway (resumable: run it again after a "
                   "broken connection and it goes on where it stopped), for a file the services cannot read where it lies")
    p.add_argument("--part-mb", type=float, default=8.0, help="with --upload: size of each part sent (MiB)")
    p.set_defaults(fn=cmd_ingest)
    p = sub.add_parser("delete", help="delete a note: from the index, its vectors and cached results; a capture's file too")
    p.add_argument("document_id")
    p.set_defaults(fn=cmd_delete)
    p = sub.add_parser("search", help="hybrid search with scores, signals and sources")
    p.add_argument("query")
    p.add_argument("--project", default="")
    p.add_argument("--type", action="append", default=[], help="document type or enrichment kind: insight, snippet, decision, bug, "
                   "reference (repeatable)")
    p.add_argument("--tag", action="append", default=[], help="required tag (repeatable)")
    p.add_argument("--mode", choices=sorted(MODES), default="hybrid")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--explain", action="store_true", help="each signal's raw score, rank and contribution; matched terms with weights")
    p.add_argument("--recency-half-life", type=float, default=0.0, metavar="DAYS",
                   help="multiply each score by 0.5 ^ (the note's age in days / DAYS): newer notes first among equals")
    p.set_defaults(fn=cmd_search)
    p = sub.add_parser("related", help="documents linked to a document (by path or id)")
    p.add_argument("doc")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(fn=cmd_related)
