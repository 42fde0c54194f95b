"""The GPU path in one short run, for a host that has one (`make gpu-check`, under two minutes).

1. The tensor kernels under CuPy against NumPy on the same inputs (keys and bspline, float32 and float64), and
   the tiled CuPy result against the untiled one, bit for bit.
2. The scheduler's NVML source: every device with its total and free memory.
3. Chat with GPU offload: only where a CUDA build of llama-cpp-python is installed; otherwise skipped, with why.

One JSON line: {"gpu": bool, "checks": {...}, "skipped": {...}, "ok": bool}. Exits 1 on any mismatch or error of
a check that ran; a host with no GPU (no CuPy, no driver, no device) reports every check skipped and exits 0.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from services.tensor.kernels import Plan, output_length, resample, resample_tile
from services.tensor.tiling import TileGrid, input_region

CASES = [((2, 21, 33, 17), (2.0, 1.5, 0.7)), ((1, 40, 9, 64), (0.5, 3.0, 1.25)), ((3, 7, 7, 7), (1.0, 2.5, 0.4))]
TOL = {"float32": 1e-5, "float64": 1e-12}


def cupy_module() -> tuple[Any, str]:
    """(cupy, "") with at least one device, or (None, why not)."""
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError:
        return None, "CuPy is not installed (`make setup-gpu`)"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        return None, f"no CUDA device or driver: {exc}"
    return (cupy, "") if count else (None, "CUDA reports no device")


def kernels(cupy: Any) -> dict[str, Any]:
    rng = np.random.default_rng(20261205)
    worst: dict[str, float] = {}
    mismatches: list[str] = []
    for kernel in ("keys", "bspline"):
        for dtype in ("float32", "float64"):
            for shape, zoom in CASES:
                v = (rng.standard_normal(shape) + rng.uniform(-2, 2)).astype(dtype)
                plan = Plan(kernel, np.dtype(dtype), shape, (shape[0], *(output_length(n, z) for n, z in zip(shape[1:], zoom, strict=True))))
                cpu = resample(np, v, plan)
                gpu = cupy.asnumpy(resample(cupy, cupy.asarray(v), plan))
                err = float(np.max(np.abs(gpu - cpu)) / max(float(np.max(np.abs(cpu))), 1e-30))
                name = f"{kernel}/{dtype}"
                worst[name] = max(worst.get(name, 0.0), err)
                if err > TOL[dtype]:
                    mismatches.append(f"{name} {shape} zoom {zoom}: relative error {err:.2e} over {TOL[dtype]:.0e}")
                tiled = np.empty(plan.output_shape, np.dtype(dtype))
                for box in TileGrid(plan.output_shape, (1, 7, 9, 5)):
                    region = input_region(plan, box)
                    part = resample_tile(cupy, cupy.asarray(v[region.slices()]), region.offset, plan, box.offset, box.shape)
                    tiled[tuple(slice(o, o + s) for o, s in zip(box.offset, box.shape, strict=True))] = cupy.asnumpy(part)
                if not np.array_equal(tiled, gpu):
                    mismatches.append(f"{name} {shape}: tiles stitched on the GPU differ from the untiled GPU result")
    return {"worst_relative_error": {k: float(f"{e:.3g}") for k, e in worst.items()}, "mismatches": mismatches}


def nvml() -> dict[str, Any]:
    from services.scheduler.devices import NvmlSource

    devices = NvmlSource().read()
    bad = [d for d in devices if not 0 < d.free <= d.total]
    return {"devices": [{"index": d.index, "name": d.name, "total_gib": round(d.total / 1024**3, 1), "free_gib": round(d.free / 1024**3, 1)}
                        for d in devices], "mismatches": [f"device {d.index}: free {d.free} of total {d.total}" for d in bad] or
                                                          ([] if devices else ["NVML found no device"])}


def llama_offload() -> tuple[dict[str, Any] | None, str]:
    try:
        import llama_cpp
    except ImportError:
        return None, "llama-cpp-python is not installed"
    if not llama_cpp.llama_supports_gpu_offload():
        return None, "this llama-cpp-python build has no GPU backend (a CUDA build is not made by setup: it needs the CUDA toolkit)"
    from services.chat.profiles import model_path
    from shared.runtime.config import load_settings

    _, path = model_path("smollm2-135m", "", load_settings().path("models"))
    llm = llama_cpp.Llama(model_path=str(path), n_gpu_layers=-1, n_ctx=512, verbose=False)
    start = time.monotonic()
    out = llm("The lighthouse keeper", max_tokens=32, temperature=0.0)
    tokens = int(out["usage"]["completion_tokens"])
    return {"tokens": tokens, "tokens_per_s": round(tokens / (time.monotonic() - start), 1),
            "mismatches": [] if tokens else ["no tokens generated with every layer offloaded"]}, ""


def main() -> int:
    report: dict[str, Any] = {"gpu": False, "checks": {}, "skipped": {}}
    cupy, why = cupy_module()
    if cupy is None:
        report["skipped"]["kernels"] = why
    else:
        report["gpu"] = True
        report["checks"]["kernels"] = kernels(cupy)
    try:
        report["checks"]["nvml"] = nvml()
        report["gpu"] = True
    except Exception as exc:  # noqa: BLE001 — boundary: pynvml raises its own tree when there is no driver
        if report["gpu"]:
            report["checks"]["nvml"] = {"mismatches": [f"NVML failed on a host with a GPU: {exc}"]}
        else:
            report["skipped"]["nvml"] = f"no NVIDIA driver: {exc}"
    chat, why = llama_offload()
    if chat is None:
        report["skipped"]["chat_offload"] = why
    else:
        report["checks"]["chat_offload"] = chat
    problems = [m for c in report["checks"].values() for m in c["mismatches"]]
    report["ok"] = not problems
    print(json.dumps(report))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
