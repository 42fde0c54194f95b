"""The tensor service end to end against single-process baselines, in one run.

Starts NATS and two tensor processes (each a coordinator and a tile worker; the
client calls one, tiles go to both through the queue group), then on a
(8, 64, 128, 128) float32 input, zoom 2 on Z, Y, X:
- bspline: the service (upload, tiles over QUIC, stitched in this process) vs
  scipy.ndimage.zoom(order=3, mode="mirror", grid_mode=False) per time step, the time steps
  spread over a pool of as many processes as the service has workers (the same cores);
- keys: the service vs a float32 separable 4-tap Keys baseline of equal effort (the same
  taps and weights per axis, written independently here), in the same kind of pool.
Per-core throughput (output MB/s per core used) is printed beside each; the single-process
scipy time is kept in the report as well.
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
from shared.client import Client
from shared.client.tensor import ResampleResult, Stitcher, check_complete, spec_for
from shared.ops.infra import free_port, start_all, stop_all
from shared.runtime.config import Settings, settings_env
from shared.runtime.status import check_service


def keys_axis_f32(a: np.ndarray, axis: int, m: int) -> np.ndarray:
    """Keys cubic convolution (a = -0.5) along one axis in float32: 4 taps, edge samples repeated."""
    n = a.shape[axis]
    x = np.zeros(m, np.float64) if m == 1 or n == 1 else np.arange(m) * ((n - 1) / (m - 1))
    base = np.floor(x).astype(np.int64)
    out = np.zeros((*a.shape[:axis], m, *a.shape[axis + 1:]), np.float32)
    shape = [1] * a.ndim
    shape[axis] = m
    for k in range(-1, 3):
        s = np.abs(x - (base + k))
        w = np.where(s <= 1, 1.5 * s**3 - 2.5 * s**2 + 1, np.where(s < 2, -0.5 * s**3 + 2.5 * s**2 - 4 * s + 2, 0.0))
        out += np.take(a, np.clip(base + k, 0, n - 1), axis=axis) * w.astype(np.float32).reshape(shape)
    return out


def keys_step_f32(args: tuple[np.ndarray, tuple[int, int, int]]) -> np.ndarray:
    step, out_zyx = args
    for axis, m in enumerate(out_zyx):
        step = keys_axis_f32(step, axis, m)
    return step


def scipy_step(args: tuple[np.ndarray, tuple[float, float, float]]) -> np.ndarray:
    step, zoom = args
    return scipy.ndimage.zoom(step, zoom, order=3, mode="mirror", grid_mode=False)


def pooled(fn: Any, items: list[Any], workers: int) -> tuple[float, np.ndarray]:
    """(seconds, stacked result) of ``fn`` over the time steps in a pool of ``workers`` processes (started before timing)."""
    import concurrent.futures

    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        list(pool.map(fn, items[:workers]))  # warm: the processes exist and have imported what they need
        start = time.perf_counter()
        out = np.stack(list(pool.map(fn, items)))
        return time.perf_counter() - start, out


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
    async with Client(settings, transport="quic" if transport == "quic" else "grpc") as client:
        out = Stitcher(lambda shape, dtype: np.empty(shape, dtype=dtype))
        result = ResampleResult()
        start = time.perf_counter()
        async for event in await client.resample(spec_for(kernel, zoom=zoom), v):
            out.feed(event, result)
        check_complete(result)
        return time.perf_counter() - start, out.output, result.end


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

    cores = args.workers  # the service's tile workers; the baselines get as many processes
    out_zyx = tuple(service["keys"][1].shape[1:])
    scipy_s, scipy_out = pooled(scipy_step, [(v[t], zoom) for t in range(v.shape[0])], cores)
    start = time.perf_counter()
    scipy_step((v[0], zoom))
    scipy_1core_s = (time.perf_counter() - start) * v.shape[0]
    keys_s, keys_out = pooled(keys_step_f32, [(v[t], out_zyx) for t in range(v.shape[0])], cores)
    keys_err_vs_reference = rel_err(keys_out[:1], keys_reference(v[:1], out_zyx))  # the baseline is right

    report: dict[str, Any] = {}
    for kernel, base_name, base_s, base in (("bspline", "scipy_s", scipy_s, scipy_out), ("keys", "keys_f32_s", keys_s, keys_out)):
        secs, out, end = service[kernel]
        mb = out.nbytes / 1e6
        err = rel_err(out, base)
        print(f"{kernel}: service {secs:.2f} s ({mb / secs:.1f} MB/s out, {mb / secs / cores:.1f} MB/s per core; {end.tiles} tiles on "
              f"{len(end.workers)} workers, {end.backends}); {base_name[:-2]} on {cores} processes {base_s:.2f} s ({mb / base_s:.1f} MB/s, "
              f"{mb / base_s / cores:.1f} per core); ratio {base_s / secs:.2f}; max rel err {err:.2e}")
        print(f"{kernel}: the same job with tiles on the gRPC stream instead of QUIC: {over_grpc[kernel]:.2f} s "
              f"(tiles/s: QUIC {end.tiles / secs:.1f}, gRPC {end.tiles / over_grpc[kernel]:.1f})")
        report[kernel] = {"service_s": round(secs, 3), base_name: round(base_s, 3), "ratio": round(base_s / secs, 3),
                          "service_grpc_s": round(over_grpc[kernel], 3), "cores": cores,
                          "max_rel_err": float(f"{err:.3g}"), "service_mb_per_s": round(mb / secs, 1),
                          "service_mb_per_s_per_core": round(mb / secs / cores, 1), "baseline_mb_per_s": round(mb / base_s, 1),
                          "baseline_mb_per_s_per_core": round(mb / base_s / cores, 1), "tiles": end.tiles, "workers": len(end.workers),
                          "tiles_per_s": {"quic": round(end.tiles / secs, 1), "grpc": round(end.tiles / over_grpc[kernel], 1)}}
    report["bspline"]["scipy_1process_s"] = round(scipy_1core_s, 3)
    report["keys"]["baseline_err_vs_float64_reference"] = float(f"{keys_err_vs_reference:.3g}")
    gpu = gpu_figures(v, zoom)
    print(f"gpu: {gpu}")
    report["gpu"] = gpu
    report["input_shape"] = list(v.shape)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
