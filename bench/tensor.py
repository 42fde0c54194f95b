"""The tensor service end to end against single-process baselines, in one run.

Starts NATS and two tensor processes (each a coordinator and a tile worker; the
client calls one, tiles go to both through the queue group), then on a
(8, 64, 128, 128) float32 input, zoom 2 on Z, Y, X:
- bspline: the service (upload, tiles over QUIC, stitched in this process) vs one
  call of scipy.ndimage.zoom(order=3, mode="mirror", grid_mode=False) per time step;
- keys: the service vs the plain float64 reference of the tests (dense matrices).
The headline service figures read tiles over QUIC; the same jobs over the gRPC stream are printed beside them.
ratio = baseline seconds / service seconds; max_rel_err = max|service − baseline| / max|baseline|.
On a host with CuPy and a GPU it also times the kernels on the device and reports
bytes moved per second against the device's peak memory bandwidth. Last line: JSON.

    make bench-tensor
    python bench/tensor.py --shape 2 32 64 64    # smaller
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from common import ROOT, isolated_settings
from tensor_reference import keys_reference, rel_err

from services.tensor.backend import cupy_device_count
from services.tensor.kernels import Plan, output_length, resample
from shared.client import Channels
from shared.config import Settings, settings_env
from shared.gen.tessera.v1 import tensor_pb2_grpc
from shared.infra import free_port, start_all, stop_all
from shared.quic import QuicClient
from shared.status import check_service
from shared.tensor_client import Stitcher, spec_for
from shared.tensor_client import resample as run_job


def start_workers(settings: Settings, count: int) -> tuple[list[subprocess.Popen[bytes]], list[Settings]]:
    procs, configs = [], []
    for i in range(count):
        s = settings if i == 0 else settings.with_overrides(tensor_port=free_port())
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")} | settings_env(s) | {"TESSERA_LOG_LEVEL": "warning"}
        log = open(settings.path(f"tensor-{i}.log"), "wb")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen([sys.executable, "-m", "services.tensor"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        configs.append(s)
    for s in configs:
        end = time.monotonic() + 60
        while asyncio.run(check_service(s, "tensor", timeout=1.0))["status"] != "SERVING":
            if time.monotonic() > end:
                raise SystemExit(f"bench: a tensor process did not start; see {settings.path()}/tensor-*.log")
            time.sleep(0.2)
    return procs, configs


async def through_service(settings: Settings, kernel: str, v: np.ndarray, zoom: tuple[float, float, float],
                          transport: str = "quic") -> tuple[float, np.ndarray, Any]:
    channels, quic = Channels(settings), QuicClient(settings) if transport == "quic" else None
    try:
        stub = await channels.stub("tensor", tensor_pb2_grpc.TensorServiceStub)
        out = Stitcher(lambda shape, dtype: np.empty(shape, dtype=dtype))
        start = time.perf_counter()
        result = await run_job(stub, spec_for(kernel, zoom=zoom), v, out, quic=quic)
        return time.perf_counter() - start, out.output, result.end
    finally:
        if quic is not None:
            await quic.close()
        await channels.close()


def gpu_figures(v: np.ndarray, zoom: tuple[float, float, float]) -> dict[str, Any]:
    """Kernel time on the device and bytes moved per second against the device's peak bandwidth."""
    if cupy_device_count() == 0:
        return {"skipped": "no CUDA device with CuPy on this host"}
    import cupy  # type: ignore[import-not-found]

    props = cupy.cuda.runtime.getDeviceProperties(0)
    peak = 2 * props["memoryClockRate"] * 1e3 * props["memoryBusWidth"] / 8  # DDR: two transfers per clock
    out: dict[str, Any] = {"device": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
                           "peak_gb_per_s": round(peak / 1e9, 1)}
    d = cupy.asarray(v)
    for kernel in ("keys", "bspline"):
        plan = Plan(kernel, np.dtype(v.dtype), v.shape, (v.shape[0], *(output_length(n, z) for n, z in zip(v.shape[1:], zoom, strict=True))))  # type: ignore[arg-type]
        resample(cupy, d, plan)
        cupy.cuda.Device(0).synchronize()
        start = time.perf_counter()
        result = resample(cupy, d, plan)
        cupy.cuda.Device(0).synchronize()
        secs = time.perf_counter() - start
        moved = v.nbytes + result.nbytes  # the least any implementation reads and writes
        out[kernel] = {"cupy_s": round(secs, 4), "gb_per_s": round(moved / secs / 1e9, 1), "share_of_peak": round(moved / secs / peak, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 64, 128, 128])
    parser.add_argument("--zoom", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    zoom = (args.zoom, args.zoom, args.zoom)
    v = np.random.default_rng().standard_normal(tuple(args.shape)).astype(np.float32)
    settings = isolated_settings(TESSERA_EMBEDDED="nats")
    print(f"input {v.shape} float32 ({v.nbytes / 1e6:.1f} MB), zoom {args.zoom}; NATS + {args.workers} tensor processes in {settings.path()}",
          flush=True)
    start_all(settings)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs, _ = start_workers(settings, args.workers)
        asyncio.run(through_service(settings, "keys", v[:1, :8], zoom))  # warm-up: connections, imports
        service = {k: asyncio.run(through_service(settings, k, v, zoom)) for k in ("bspline", "keys")}
        over_grpc = {k: asyncio.run(through_service(settings, k, v, zoom, "grpc"))[0] for k in ("bspline", "keys")}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        stop_all(settings)

    start = time.perf_counter()
    scipy_out = np.stack([scipy.ndimage.zoom(v[t], zoom, order=3, mode="mirror", grid_mode=False) for t in range(v.shape[0])])
    scipy_s = time.perf_counter() - start
    start = time.perf_counter()
    keys_out = keys_reference(v, service["keys"][1].shape[1:])
    reference_s = time.perf_counter() - start

    report: dict[str, Any] = {}
    for kernel, base_name, base_s, base in (("bspline", "scipy_s", scipy_s, scipy_out), ("keys", "reference_s", reference_s, keys_out)):
        secs, out, end = service[kernel]
        mb = out.nbytes / 1e6
        err = rel_err(out, base)
        print(f"{kernel}: service {secs:.2f} s ({mb / secs:.1f} MB/s out, {end.tiles} tiles on {len(end.workers)} workers, "
              f"{end.backends}); {base_name[:-2]} {base_s:.2f} s ({mb / base_s:.1f} MB/s); ratio {base_s / secs:.2f}; max rel err {err:.2e}")
        print(f"{kernel}: the same job with tiles on the gRPC stream instead of QUIC: {over_grpc[kernel]:.2f} s")
        report[kernel] = {"service_s": round(secs, 3), base_name: round(base_s, 3), "ratio": round(base_s / secs, 3),
                          "service_grpc_s": round(over_grpc[kernel], 3),
                          "max_rel_err": float(f"{err:.3g}"), "service_mb_per_s": round(mb / secs, 1),
                          "baseline_mb_per_s": round(mb / base_s, 1), "tiles": end.tiles, "workers": len(end.workers)}
    gpu = gpu_figures(v, zoom)
    print(f"gpu: {gpu}")
    report["gpu"] = gpu
    report["input_shape"] = list(v.shape)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
