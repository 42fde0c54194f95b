"""Snapshots and resumable uploads (issue 38): one JSON line with chunks, snapshot_s, snapshot_mb, restore_s and
upload_2gb_peak_rss_mb, each beside its baseline from the same run.

1. An isolated mesh ingests SciFact abstracts (--limit, enrichment off).
2. `snapshot.create` into a folder of its own: its time and size; the baseline is `pg_dump` of the same database alone
   (what the snapshot adds: the files' archive, the sha256 sums, the manifest, the fsyncs); then the same encrypted.
3. `tessera snapshot restore` (it stops the services, replaces the database, puts the files back, starts them again):
   its time; then the mesh is SERVING again with the same number of chunks.
4. A file of --upload-gb GiB sent through the gateway's resumable upload in 64 MiB parts: the gateway's RSS sampled
   every 20 ms; the figure is its peak rise over its RSS before the upload (target: under 64 MB), with the throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import ROOT, isolated_settings, mesh_processes, tessera

from shared.client import Client
from shared.ops import snapshot
from shared.runtime.config import Settings
from shared.tools import upload
from shared.tools.eval_beir import load_beir, write_corpus

MIB = 1024 * 1024


async def chunks(settings: Settings) -> int:
    async with Client(settings) as client:
        return int((await client.library()).chunks)


def pg_dump_alone(settings: Settings, into: Path) -> float:
    """The baseline: the database's dump by itself, the way the snapshot makes it."""
    args, env = snapshot.pg_args(settings, "backup")
    started = time.perf_counter()
    subprocess.run([snapshot.pg_bin("pg_dump"), *args, "--format=custom", "--no-owner", "--no-privileges", "--exclude-extension=vector",
                    "--file", str(into / "baseline.dump")], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def gateway_rss_peak(pid: int, stop: threading.Event, out: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.is_set():
        try:
            out.append(proc.memory_info().rss)
        except psutil.Error:
            return
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--limit", type=int, default=1000, help="SciFact abstracts ingested (0: all)")
    parser.add_argument("--upload-gb", type=float, default=2.0)
    args = parser.parse_args()
    corpus, _, _ = load_beir(Path(args.data), "train")
    if args.limit:
        corpus = dict(list(corpus.items())[:args.limit])
    size = int(args.upload_gb * 1024 ** 3)
    settings = isolated_settings(TESSERA_ENRICH="off", TESSERA_GATEWAY_UPLOAD_MAX_BYTES=str(size + MIB))
    folder = settings.path("imports", "beir", "scifact")
    write_corpus(corpus, folder)
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-snapshot-"))
    tessera(settings, "up", "--timeout", "300")
    try:
        async def ingest() -> None:
            async with Client(settings) as client:
                await client.ingest(folder, project="bench")

        asyncio.run(ingest())
        n = asyncio.run(chunks(settings))

        baseline_s = pg_dump_alone(settings, work)
        started = time.perf_counter()
        made = snapshot.create(settings, work / "snapshots")
        snapshot_s = time.perf_counter() - started
        manifest = snapshot.verify(made)
        snapshot_mb = sum(f["bytes"] for f in manifest["files"].values()) / MIB
        started = time.perf_counter()  # the same, encrypted (TESSERA_SNAPSHOT_KEY_FILE): what sealing costs
        sealed = snapshot.create(settings, work / "sealed", b"a passphrase for the bench")
        sealed_s = time.perf_counter() - started
        snapshot.verify(sealed, b"a passphrase for the bench")

        started = time.perf_counter()
        tessera(settings, "snapshot", "restore", str(made))
        restore_s = time.perf_counter() - started
        tessera(settings, "up", "--timeout", "300")
        restored_chunks = asyncio.run(chunks(settings))

        big = work / "big.bin"
        block = os.urandom(64 * MIB)
        with big.open("wb") as f:
            for i in range(0, size, len(block)):
                f.write(block[:min(len(block), size - i)])
        gateway = next(pid for pid, name in mesh_processes(settings.path()).items() if name == "gateway")
        before = psutil.Process(gateway).memory_info().rss
        samples: list[int] = []
        stop = threading.Event()
        sampler = threading.Thread(target=gateway_rss_peak, args=(gateway, stop, samples), daemon=True)
        sampler.start()
        started = time.perf_counter()
        upload.upload(settings, big, "bench", part_bytes=64 * MIB)
        upload_s = time.perf_counter() - started
        stop.set()
        sampler.join()
        peak = max(samples, default=before)
    finally:
        tessera(settings, "down")
    print(json.dumps({
        "chunks": n, "snapshot_s": round(snapshot_s, 2), "snapshot_mb": round(snapshot_mb, 1), "restore_s": round(restore_s, 2),
        "upload_2gb_peak_rss_mb": round((peak - before) / MIB, 1),
        "baseline": {"pg_dump_s": round(baseline_s, 2), "gateway_rss_before_mb": round(before / MIB, 1)},
        "snapshot_encrypted_s": round(sealed_s, 2),
        "restored_chunks": restored_chunks, "upload_gb": args.upload_gb, "upload_mb_per_s": round(size / MIB / upload_s, 1),
        "gateway_rss_peak_mb": round(peak / MIB, 1), "documents": len(corpus), "targets": {"upload_2gb_peak_rss_mb": 64}}))


if __name__ == "__main__":
    main()
