"""Helpers shared by the benchmarks: an isolated mesh on free ports, and percentiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.client import Client
from shared.ops.infra import free_port
from shared.runtime.config import SERVICES, Settings, load_settings, settings_env

ROOT = Path(__file__).resolve().parent.parent


def isolated_settings(**extra: str) -> Settings:
    data = Path(tempfile.mkdtemp(prefix="tessera-bench-"))
    env = {"TESSERA_DATA_DIR": str(data), "TESSERA_DATABASE_URL": f"postgresql://tessera@127.0.0.1:{free_port()}/tessera",
           "TESSERA_NATS_URL": f"nats://127.0.0.1:{free_port()}", "TESSERA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "TESSERA_GATEWAY_PORT": str(free_port()), "TESSERA_GATEWAY_GRPC_PORT": str(free_port()),
           "TESSERA_GATEWAY_TLS_PORT": str(free_port()), "TESSERA_CHAT_MODEL": "smollm2-135m", **extra}
    env.update({f"TESSERA_{s.upper()}_PORT": str(free_port()) for s in SERVICES if s != "gateway"})
    env.update({f"TESSERA_{s.upper()}_METRICS_PORT": str(free_port()) for s in SERVICES if s != "gateway"})
    return load_settings(env)


def tessera(settings: Settings, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")} | settings_env(settings)
    result = subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        if args[:1] == ("up",):  # what did start (the servers, pm2 and the services that came up) must not outlive the bench
            subprocess.run([sys.executable, "-m", "shared.cli", "down"], cwd=ROOT, env=env, capture_output=True, text=True)
        raise SystemExit(f"bench: `tessera {' '.join(args)}` failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def corpus_args(description: str, default_limit: int) -> tuple[argparse.Namespace, dict[str, tuple[str, str]], dict[str, str]]:
    """Parse the common flags (--data, --limit, --seconds) and load SciFact: (args, corpus, queries)."""
    from shared.tools.eval_beir import load_beir

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--limit", type=int, default=default_limit, help="only the first N documents (0: all)")
    parser.add_argument("--seconds", type=float, default=15.0, help="load duration per side (search)")
    parser.add_argument("--copies", type=int, default=9, help="search: copies of the corpus for the 100k step (0: skip it)")
    parser.add_argument("--cranfield", default=str(ROOT.parent / "shared" / "data" / "cranfield"), help="search: the second tuning set")
    args = parser.parse_args()
    corpus, queries, _ = load_beir(Path(args.data), "train")
    if args.limit:
        corpus = dict(list(corpus.items())[:args.limit])
    return args, corpus, queries


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


async def ingest(settings: Settings, folder: str, project: str) -> Any:
    """Ingest a folder through the client SDK and wait until every file is done."""
    async with Client(settings) as client:
        return await client.ingest(folder, project=project)


@contextlib.contextmanager
def scifact_mesh(corpus: dict[str, tuple[str, str]], project: str = "bench", **extra: str) -> Iterator[Settings]:
    """An isolated mesh (``extra``: more TESSERA_* settings) with the corpus ingested into ``project``; it is stopped on leaving."""
    from shared.tools.eval_beir import write_corpus

    settings = isolated_settings(**extra)
    folder = settings.path("imports", "beir", "scifact")
    write_corpus(corpus, folder)
    tessera(settings, "up", "--timeout", "300")
    try:
        asyncio.run(ingest(settings, str(folder), project))
        yield settings
    finally:
        tessera(settings, "down")


def mesh_processes(data_dir: Path) -> dict[int, str]:
    """The live processes of the mesh whose data directory is ``data_dir``, by pid: each service (``embed``, …) and
    each server (``postgres``, ``nats-server``, ``valkey-server``, pm2's ``node``). They are found by the
    TESSERA_DATA_DIR their environment carries (`tessera up` starts every one of them with it)."""
    mark = f"TESSERA_DATA_DIR={data_dir}".encode()
    out: dict[int, str] = {}
    parents: dict[int, int] = {}  # the other processes' parents
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            if mark in Path(entry.path, "environ").read_bytes().split(b"\0"):
                args = [a.decode(errors="replace") for a in Path(entry.path, "cmdline").read_bytes().split(b"\0") if a]
                module = next((a for a in args if a.startswith("services.")), "")
                out[pid] = module.removeprefix("services.") if module else Path(args[0]).name if args else "?"
            else:
                parents[pid] = int(Path(entry.path, "stat").read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone, or not ours to read
            continue
    # PostgreSQL's backends rewrite the memory their environment was in (their ps title), so they are found as the
    # postmaster's children.
    postmasters = {pid for pid, name in out.items() if name == "postgres"}
    out.update({pid: "postgres" for pid, ppid in parents.items() if ppid in postmasters})
    return out


class ProcessMonitor:
    """Peak resident memory and CPU seconds of each of a mesh's processes while a step runs: every ``interval`` seconds
    it reads /proc for each process (VmHWM, the kernel's own high-water mark, and utime + stime). Processes of one
    name add their CPU (PostgreSQL's backends) and report the largest peak of any one of them."""

    def __init__(self, data_dir: Path, interval: float = 0.5) -> None:
        self.data_dir, self.interval = data_dir, interval
        self.peak_kb: dict[str, int] = {}
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (name, CPU seconds last read)
        self.start_cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        for pid, name in mesh_processes(self.data_dir).items():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
            self.peak_kb[name] = max(self.peak_kb.get(name, 0), hwm)
            seconds = (int(fields[11]) + int(fields[12])) / self._tick  # utime, stime
            self.start_cpu.setdefault(pid, seconds)
            self.cpu[pid] = (name, seconds)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> ProcessMonitor:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: round(kb / 1024, 1) for name, kb in sorted(self.peak_kb.items())}

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds each name used while monitored (a process that started meanwhile: since its first sample)."""
        total: dict[str, float] = {}
        for pid, (name, seconds) in self.cpu.items():
            total[name] = total.get(name, 0.0) + seconds - self.start_cpu[pid]
        return {name: round(s, 1) for name, s in sorted(total.items(), key=lambda kv: -kv[1])}
