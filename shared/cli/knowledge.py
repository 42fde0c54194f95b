"""`tessera map`, `tessera review`, `tessera stale`, `tessera enrich`: the knowledge that keeps itself current."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from rich.table import Table

from shared.client import Client
from shared.contracts import window_days
from shared.gen.tessera.v1 import common_pb2, ingest_pb2, search_pb2
from shared.runtime.config import Settings
from shared.tools import map_png
from shared.tools.progress import console


def cmd_map(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> search_pb2.MapResponse:
        async with Client(settings) as client:
            return await client.map(project=args.project, rebuild=args.rebuild, examples=args.examples, since_days=window_days(args.since),
                                    points=bool(args.png))

    reply = asyncio.run(run())
    if args.png:
        return write_png(reply, args.png, args.project)
    if not reply.clusters:
        console.print(f"no clusters yet ({reply.unassigned} documents waiting; a project needs "
                      f"{settings.knowledge.cluster_min_documents} embedded documents)")
        return 0
    table = Table(title=f"topic map ({len(reply.clusters)} clusters)", title_justify="left")
    for col in ("id", "project", "size", f"new ({args.since})", "name", "closest documents"):
        table.add_column(col)
    for c in reply.clusters:
        table.add_row(str(c.cluster_id), c.project or "-", str(c.size), str(c.new_documents or ""), c.name,
                      "; ".join(e.title for e in c.examples))
    console.print(table)
    for r in reply.runs:
        console.print(f"{r.project or '(no project)'}: {r.documents} documents in {r.clusters} clusters, silhouette {r.silhouette:.2f} "
                      "(-1 to 1: how well the clusters are separated)", highlight=False)
    names = {c.cluster_id: c.name for c in reply.clusters}
    for m in reply.merges:
        console.print(f"merge? [bold]{names.get(m.a, m.a)}[/] and [bold]{names.get(m.b, m.b)}[/] (centroids {m.similarity:.2f} similar)",
                      highlight=False)
    if reply.unassigned:
        console.print(f"[dim]{reply.unassigned} documents not in a cluster yet[/]")
    return 0


def write_png(reply: search_pb2.MapResponse, path: str, project: str) -> int:
    """`tessera map --png PATH`: the map as a picture, with its clustering quality in the title."""
    if not reply.points:
        console.print(f"no map yet ({reply.unassigned} documents waiting for their first clustering)")
        return 1
    runs = ", ".join(f"{r.project or '(none)'}: {r.clusters} clusters, silhouette {r.silhouette:.2f}" for r in reply.runs)
    title = f"Tessera map{' of ' + project if project else ''}: {len(reply.points)} notes ({runs})"
    dots = [map_png.Dot(p.x, p.y, p.cluster_id) for p in reply.points]
    Path(path).write_bytes(map_png.render(dots, {c.cluster_id: c.name for c in reply.clusters}, title))
    console.print(f"{path}: {len(dots)} notes in {len(reply.clusters)} clusters", highlight=False)
    return 0


def cmd_review(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> tuple[search_pb2.ReviewResponse, str]:
        async with Client(settings) as client:
            review = await client.review(since_days=window_days(args.since), project=args.project)
            saved = ""
            if not args.no_save:
                reply = await client.capture(review.title, review.markdown, tags=["review"], project=args.project, type="review", force=True)
                saved = reply.path
            return review, saved

    review, saved = asyncio.run(run())
    sys.stdout.write(review.markdown)
    if saved:
        console.print(f"[dim]saved as {saved}[/]", highlight=False)
    return 0


def cmd_stale(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> search_pb2.StaleResponse:
        async with Client(settings) as client:
            return await client.stale(project=args.project, days=args.days, limit=args.limit)

    reply = asyncio.run(run())
    if not reply.documents:
        console.print(f"nothing stale: every note changed or was found in a search within {reply.days} days")
        return 0
    table = Table(title=f"{reply.total} stale notes (no change and no search hit for {reply.days} days)", title_justify="left")
    for col in ("updated", "last found", "title", "path"):
        table.add_column(col)
    for d in reply.documents:
        table.add_row(d.updated_at.ToDatetime().strftime("%Y-%m-%d"),
                      d.last_hit.ToDatetime().strftime("%Y-%m-%d") if d.HasField("last_hit") else "never", d.title, d.path)
    console.print(table)
    return 0


def cmd_enrich(settings: Settings, args: argparse.Namespace) -> int:
    if args.deferred:
        async def deferred() -> int:
            async with Client(settings) as client:
                return await client.enrich_deferred(project=args.project)

        n = asyncio.run(deferred())
        where = f"project {args.project}" if args.project else "every project"
        console.print(f"{n} deferred documents of {where} queued for enrichment: `tessera status` shows the backlog and its ETA",
                      highlight=False)
        return 0

    async def run() -> common_pb2.Enrichment:
        async with Client(settings) as client:
            if args.document:
                return await client.enrich(args.document)
            return await client.enrich(text=sys.stdin.read(), title=args.title)

    e = asyncio.run(run())
    if e.state != "enriched":
        console.print(f"{e.state}: {e.reason}", highlight=False)
        return 1
    console.print(f"[bold]{e.kind}[/]  {e.title}\n{e.summary}\ntags: {', '.join(e.tags)}\n"
                  f"entities: {', '.join(f'{x.name} ({x.kind})' for x in e.entities) or '-'}", highlight=False)
    return 0


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    async def run() -> ingest_pb2.WatchStatus:
        async with Client(settings) as client:
            return await client.watch_status()

    w = asyncio.run(run())
    if not w.roots:
        console.print("no folder is watched: set TESSERA_WATCH_ROOTS (folders under TESSERA_INGEST_ROOTS) and restart ingest")
        return 0
    console.print(f"watched by {w.leader or '[yellow]no instance yet[/]'}", highlight=False)
    for r in w.roots:
        console.print(f"  {r.path}: {r.documents} documents", highlight=False)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("map", help="topic clusters with sizes and names, and merge suggestions")
    p.add_argument("--project", default="")
    p.add_argument("--rebuild", action="store_true", help="re-cluster now")
    p.add_argument("--examples", type=int, default=3, help="closest documents shown per cluster")
    p.add_argument("--png", default="", metavar="PATH", help="write the map as a picture (each note a dot, coloured by cluster)")
    p.add_argument("--since", default="7d", help="window of the 'new' column (7d, 36h, 2w)")
    p.set_defaults(fn=cmd_map)
    p = sub.add_parser("review", help="the weekly review as markdown, saved as a note of type review")
    p.add_argument("--since", default="7d", help="window (7d, 36h, 2w)")
    p.add_argument("--project", default="")
    p.add_argument("--no-save", action="store_true", help="print it only")
    p.set_defaults(fn=cmd_review)
    p = sub.add_parser("stale", help="notes nobody changed or found in a search for N days")
    p.add_argument("--project", default="")
    p.add_argument("--days", type=int, default=0, help="default: TESSERA_STALE_DAYS")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(fn=cmd_stale)
    p = sub.add_parser("enrich", help="type, title, summary, tags and entities of a document (stored) or of standard input")
    p.add_argument("document", nargs="?", default="", help="a document id; without it, the text on standard input")
    p.add_argument("--title", default="")
    p.add_argument("--deferred", action="store_true", help="queue what large imports left unenriched (TESSERA_ENRICH_IMPORT_MAX)")
    p.add_argument("--project", default="", help="with --deferred: only this project's")
    p.set_defaults(fn=cmd_enrich)
    p = sub.add_parser("watch", help="the folders kept in sync (TESSERA_WATCH_ROOTS) and the ingest instance that watches them")
    p.set_defaults(fn=cmd_watch)
