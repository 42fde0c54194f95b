"""One chat request is one trace across the mesh (gateway → chat → search), with the spans that explain a
slow answer; a capture's trace crosses the NATS hop to the embed worker; `tessera trace` prints the tree."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from helpers import ADMIN, ROOT, ServiceProcess, child_env

from shared.runtime.config import Settings
from shared.runtime.tracing import trace_dir
from shared.tools.traces import read_spans, request_spans


async def spans_of(infra: Settings, rid: str, want: set[str], timeout_s: float = 10.0,
                   services: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The request's spans once every wanted span name, and a span of each of ``services``, has been exported (each
    process exports in its own batches)."""
    found: list[dict[str, Any]] = []
    for _ in range(int(timeout_s / 0.25)):
        found = request_spans(read_spans(trace_dir(infra)), rid)
        if want <= {s["name"] for s in found} and services <= {s["service"] for s in found}:
            break
        await asyncio.sleep(0.25)
    return found


def tessera_trace(infra: Settings, key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", "trace", key], cwd=ROOT, env=child_env(infra), capture_output=True,
                          text=True, timeout=60)


async def test_one_chat_request_is_one_trace_across_four_services(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path) -> None:
    async with httpx.AsyncClient(headers=ADMIN, timeout=120) as http:
        r = await http.post(f"http://127.0.0.1:{infra.gateway_port}/api/v1/chat",
                            json={"question": "How do I descale a kettle?", "filters": {"project": "home"}, "max_tokens": 24})
    assert r.status_code == 200 and "event: done" in r.text
    rid = r.headers["x-request-id"]
    spans = await spans_of(infra, rid, {"retrieval", "queue wait", "prefill", "generation", "HTTP POST /api/v1/chat"})
    assert len({s["trace_id"] for s in spans}) == 1, [(s["trace_id"][:6], s["service"], s["name"], s["parent_id"]) for s in spans]
    services = {s["service"] for s in spans}
    # the query's vector is made inside search (its ONNX encoder): the answer path no longer calls embed
    assert {"gateway", "chat", "search"} <= services and "embed" not in services, services
    names = {s["name"] for s in spans}
    assert {"retrieval", "queue wait", "prefill", "generation", "tessera.v1.SearchService/Search"} <= names, names
    by_id = {s["span_id"]: s for s in spans}
    search = next(s for s in spans if s["name"] == "tessera.v1.SearchService/Search")
    assert by_id[search["parent_id"]]["name"] == "retrieval"  # the parent links cross the process boundary
    root = [s for s in spans if s["parent_id"] not in by_id]
    assert len(root) == 1 and root[0]["service"] == "gateway" and root[0]["name"] == "HTTP POST /api/v1/chat"

    cli = await asyncio.to_thread(tessera_trace, infra, rid)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    print(cli.stdout)
    assert "prefill  [chat]" in cli.stdout and "retrieval  [chat]" in cli.stdout and "[search]" in cli.stdout, cli.stdout
    missing = await asyncio.to_thread(tessera_trace, infra, "no-such-request")
    assert missing.returncode == 1 and "no trace for 'no-such-request'" in missing.stdout


async def test_a_capture_is_traced_across_the_nats_hop(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    async with httpx.AsyncClient(headers=ADMIN, timeout=120) as http:
        r = await http.post(f"http://127.0.0.1:{infra.gateway_port}/api/v1/notes", headers={"x-request-id": "trace-capture-1"},
                            json={"title": "Traced note", "body": "A note whose embedding is traced.", "project": "traces"})
    assert r.status_code == 201 and r.headers["x-request-id"] == "trace-capture-1"  # a caller's request id is kept
    spans = await spans_of(infra, "trace-capture-1", {"embed document", "HTTP POST /api/v1/notes"},
                           services=frozenset({"gateway", "ingest", "embed"}))
    assert {"gateway", "ingest", "embed"} <= {s["service"] for s in spans}, spans
    embed = next(s for s in spans if s["name"] == "embed document")
    assert embed["parent_id"] in {s["span_id"] for s in spans if s["service"] == "ingest"}  # through the JetStream headers
