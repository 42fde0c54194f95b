"""`tessera trace REQUEST_ID`: a request's spans across the mesh as a tree, read from the span files
(``TESSERA_TRACES=file``: ``<data_dir>/traces/<service>.jsonl``). An id may be a request id (the gateway
returns it as ``X-Request-ID``) or a trace id."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from shared.runtime.config import Settings
from shared.runtime.tracing import REQUEST_ID_ATTR, trace_dir


def read_spans(folder: Path) -> list[dict[str, Any]]:
    spans = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open() as f:
            for line in f:
                try:
                    spans.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a process that died mid-write
    return spans


def request_spans(spans: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Every span of the traces that ``key`` (a request id or a trace id) belongs to, oldest first."""
    traces = {s["trace_id"] for s in spans if s["trace_id"] == key or s["attributes"].get(REQUEST_ID_ATTR) == key}
    return sorted((s for s in spans if s["trace_id"] in traces), key=lambda s: s["start_ns"])


def tree_lines(spans: list[dict[str, Any]]) -> list[str]:
    """One line per span, indented under its parent: offset from the first span, duration, service, name."""
    if not spans:
        return []
    ids = {s["span_id"] for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else None
        children.setdefault(parent, []).append(s)
    origin = spans[0]["start_ns"]
    out: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            took = (s["end_ns"] - s["start_ns"]) / 1e6
            mark = " !" if s["status"] == "ERROR" else ""
            out.append(f"{(s['start_ns'] - origin) / 1e6:9.1f} ms {took:9.1f} ms  {'  ' * depth}{s['name']}  [{s['service']}]{mark}")
            walk(s["span_id"], depth + 1)

    walk(None, 0)
    return out


def cmd_trace(settings: Settings, args: argparse.Namespace) -> int:
    folder = trace_dir(settings)
    spans = read_spans(folder)
    if not spans:
        print(f"tessera: no spans in {folder}; traces are written there when TESSERA_TRACES=file (the default)")
        return 1
    found = request_spans(spans, args.id)
    if not found:
        print(f"tessera: no trace for {args.id!r} in {folder}; give the X-Request-ID the gateway returned, or a trace id")
        return 1
    if args.json:
        print(json.dumps(found))
        return 0
    services = sorted({s["service"] for s in found})
    print(f"trace {found[0]['trace_id']}: {len(found)} spans from {len(services)} services ({', '.join(services)})")
    print(f"{'start':>12} {'took':>12}  span")
    for line in tree_lines(found):
        print(line)
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("trace", help="a request's spans across the services, as a tree (retrieval, queue wait, prefill, generation)")
    p.add_argument("id", help="the request id (the gateway's X-Request-ID header) or a trace id")
    p.add_argument("--json", action="store_true", help="the spans as JSON")
    p.set_defaults(fn=cmd_trace)
