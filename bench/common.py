"""Helpers shared by the benchmarks: an isolated mesh on free ports, and percentiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
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
