"""Per-service scaling in one run: search with 1 vs 2 instances, embed with 1 vs 2 workers, and a bare echo baseline.

Starts an isolated mesh (`tessera up`), ingests SciFact abstracts, then:
- embed: a batch of abstracts ingested until every chunk is embedded, with 1 embed
  instance, then (`tessera scale embed 2`) the same abstracts again under other paths and
  another project (so every chunk is embedded again: the same inputs): chunks/s;
- echo: a bare grpc.aio server answering the search call by echoing its bytes, under
  the same `tessera load` run as search (same requests, concurrency, duration);
- search: SciFact train queries (result cache bypassed) at the same load with 1, then
  (`tessera scale search 2`) 2 instances: RPS and p99.
While each runs it samples CPU per process (psutil), so the report says what saturates.
Last line: JSON with search {rps_1, rps_2, p99_ms_1, p99_ms_2}, embed {chunks_per_s_1,
chunks_per_s_2}, echo_rps, search_rps_vs_echo.

    make bench-scaling
    python bench/scaling.py --seconds 10 --docs 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ingest, isolated_settings, tessera

from shared.ops.infra import free_port
from shared.runtime.config import Settings
from shared.tools.eval_beir import load_beir, write_corpus
from shared.tools.load import Target, make_target, run_load, summarize

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"


def role(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return ""
    for name in ("gateway", "ingest", "embed", "search", "chat", "tensor", "scheduler"):
        if f"services.{name}" in cmd:
            return name
    if "postgres" in cmd:
        return "postgres"
    for name in ("nats-server", "valkey-server", "load_echo"):
        if name in cmd:
            return name
    return "load client (this process)" if proc.pid == os.getpid() else ""


class CpuSampler:
    """CPU seconds per role while a phase runs, as a share of one core, and the machine's busy share."""

    def __init__(self) -> None:
        self.busy: dict[str, float] = defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        out = {}
        for p in psutil.process_iter():
            r = role(p)
            if r:
                try:
                    t = p.cpu_times()
                    out[p.pid] = (r, t.user + t.system)
                except psutil.Error:
                    pass
        return out

    def _run(self) -> None:
        last = self._snapshot()
        while not self._stop.wait(0.5):
            now = self._snapshot()
            for pid, (r, cpu) in now.items():
                if pid in last:
                    self.busy[r] += max(0.0, cpu - last[pid][1])
            last = now

    def __enter__(self) -> CpuSampler:
        self.start, self.machine0 = time.monotonic(), psutil.cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        wall = time.monotonic() - self.start
        t1 = psutil.cpu_times()
        idle = (t1.idle + t1.iowait) - (self.machine0.idle + self.machine0.iowait)
        total = sum(t1) - sum(self.machine0)
        self.machine = round(1 - idle / total, 3) if total else 0.0
        self.cores = {r: round(v / wall, 2) for r, v in sorted(self.busy.items(), key=lambda kv: -kv[1]) if v / wall >= 0.02}


def embed_phase(settings: Settings, docs: dict[str, tuple[str, str]], name: str) -> tuple[float, int, CpuSampler]:
    folder = settings.path("imports", name)
    write_corpus(docs, folder)
    with CpuSampler() as cpu:
        start = time.perf_counter()
        job = asyncio.run(ingest(settings, str(folder), name))
        secs = time.perf_counter() - start
    return job.counts.chunks_embedded / secs, job.counts.chunks_embedded, cpu


def load_phase(target: Target, address: str, args: argparse.Namespace) -> tuple[dict[str, Any], CpuSampler]:
    with CpuSampler() as cpu:
        results = asyncio.run(run_load(target, address, concurrency=args.concurrency, total=None, duration=args.seconds, connections=4))
    return summarize(results, target), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per search/echo phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--docs", type=int, default=300, help="abstracts embedded in each phase (the same ones; the index holds both copies)")
    args = parser.parse_args()
    corpus, queries, _ = load_beir(SCIFACT, "train")
    items = list(corpus.items())
    settings = isolated_settings(TESSERA_SEARCH_INSTANCES="1", TESSERA_EMBED_INSTANCES="1")
    print(f"starting an isolated mesh in {settings.path()} … ({psutil.cpu_count()} cores)", flush=True)
    tessera(settings, "up", "--timeout", "300")
    echo = None
    report: dict[str, Any] = {}
    cpu_report: dict[str, Any] = {}
    try:
        cps1, chunks1, cpu = embed_phase(settings, dict(items[:args.docs]), "embed1")
        cpu_report["embed_1"] = {"machine_busy": cpu.machine, "cores_by_process": cpu.cores}
        print(f"embed, 1 worker: {chunks1} chunks, {cps1:.1f} chunks/s; machine busy {cpu.machine:.0%}; {cpu.cores}", flush=True)
        tessera(settings, "scale", "embed", "2")
        cps2, chunks2, cpu = embed_phase(settings, dict(items[:args.docs]), "embed2")  # the same inputs as with 1 worker
        cpu_report["embed_2"] = {"machine_busy": cpu.machine, "cores_by_process": cpu.cores}
        print(f"embed, 2 workers: {chunks2} chunks, {cps2:.1f} chunks/s; machine busy {cpu.machine:.0%}; {cpu.cores}", flush=True)
        tessera(settings, "scale", "embed", "1")

        requests = [{"query": text, "top_k": 10, "bypass_cache": True} for text in list(queries.values())[:64]]
        target = make_target(ROOT / "protos" / "tessera" / "v1" / "search.proto", [], "tessera.v1.SearchService/Search", requests)
        port = free_port()
        echo = subprocess.Popen([sys.executable, "-m", "shared.tools.load_echo", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert echo.stdout is not None
        echo.stdout.readline()
        runs: dict[str, dict[str, Any]] = {}
        for label, address in (("echo", f"127.0.0.1:{port}"), ("search_1", settings.address("search"))):
            runs[label], cpu = load_phase(target, address, args)
            cpu_report[label] = {"machine_busy": cpu.machine, "cores_by_process": cpu.cores}
        tessera(settings, "scale", "search", "2")
        runs["search_2"], cpu = load_phase(target, settings.address("search"), args)
        cpu_report["search_2"] = {"machine_busy": cpu.machine, "cores_by_process": cpu.cores}
        for label, s in runs.items():
            print(f"{label}: {s['count']} calls, {s['rps']:.1f} RPS, p50 {s['latency_ms']['p50']:.1f} ms, p99 {s['latency_ms']['p99']:.1f} ms, "
                  f"codes {s['status_codes']}; machine busy {cpu_report[label]['machine_busy']:.0%}; {cpu_report[label]['cores_by_process']}",
                  flush=True)
        report = {
            "search": {"rps_1": runs["search_1"]["rps"], "rps_2": runs["search_2"]["rps"],
                       "p99_ms_1": runs["search_1"]["latency_ms"]["p99"], "p99_ms_2": runs["search_2"]["latency_ms"]["p99"]},
            "embed": {"chunks_per_s_1": round(cps1, 2), "chunks_per_s_2": round(cps2, 2)},
            "echo_rps": runs["echo"]["rps"],
            "search_rps_vs_echo": round(runs["search_1"]["rps"] / runs["echo"]["rps"], 4) if runs["echo"]["rps"] else None,
            "echo_p99_ms": runs["echo"]["latency_ms"]["p99"],
            "cores": psutil.cpu_count(), "concurrency": args.concurrency, "seconds": args.seconds, "cpu": cpu_report,
        }
    finally:
        if echo is not None:
            echo.terminate()
            echo.wait(10)
        tessera(settings, "down")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
