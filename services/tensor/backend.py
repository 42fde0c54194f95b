"""Array backends for the tile workers: NumPy always, CuPy on a device the scheduler leased.

``compute_tile`` turns one TileJob into the output tile's bytes; it does no network
I/O. The kernels are the same code on both backends (see kernels.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from services.tensor.kernels import Plan, resample_tile
from services.tensor.spec import DTYPES, KERNEL_NAMES, shape4
from shared.gen.tessera.v1 import tensor_pb2

log = logging.getLogger("tessera.tensor")


@dataclass(frozen=True)
class Backend:
    name: str  # "numpy" or "cupy:<device>"
    xp: ModuleType
    device: int | None = None


NUMPY = Backend("numpy", np)


def cupy_device_count() -> int:
    """CUDA devices CuPy can use here; 0 when CuPy is not installed or finds no device."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:  # noqa: BLE001 — boundary: probing CuPy; no CuPy, no driver, no device all mean NumPy
        return 0


def cupy_backend(device: int) -> Backend:
    import cupy

    return Backend(f"cupy:{device}", cupy, device)


class _SimulatedDevice:
    def __init__(self, index: int) -> None:
        self.index = index

    def __enter__(self) -> _SimulatedDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class SimulatedCupy(ModuleType):
    """A GPU this machine lacks, behind the part of CuPy's interface the workers use (device
    context, asarray, asnumpy, take); NumPy does the arithmetic. Paired with the scheduler's
    simulated devices it exercises the lease path end to end on a CPU-only host."""

    def __init__(self) -> None:
        super().__init__("simulated_cupy")
        self.cuda = SimpleNamespace(Device=_SimulatedDevice)
        self.asarray = np.asarray
        self.take = np.take
        self.asnumpy = np.asarray


def simulated_backend(device: int) -> Backend:
    return Backend(f"simulated-cuda:{device}", SimulatedCupy(), device)


def job_plan(job: tensor_pb2.TileJob) -> Plan:
    return Plan(KERNEL_NAMES[job.kernel], DTYPES[job.dtype], shape4(job.input_shape), shape4(job.output_shape))


def tile_bytes_needed(job: tensor_pb2.TileJob) -> int:
    """Device memory a tile needs: its region, a few intermediates of the region's size, the output."""
    item = DTYPES[job.dtype].itemsize
    return item * (4 * math.prod(job.region_shape) + 2 * math.prod(job.tile_shape))


def compute_tile(backend: Backend, job: tensor_pb2.TileJob) -> bytes:
    plan = job_plan(job)
    expected = math.prod(job.region_shape) * plan.dtype.itemsize
    if len(job.data) != expected:
        raise ValueError(f"tile {job.index} carries {len(job.data)} bytes for a region of {expected}")
    region: Any = np.frombuffer(job.data, dtype=plan.dtype).reshape(tuple(job.region_shape))
    args = (tuple(job.region_offset), plan, tuple(job.tile_offset), tuple(job.tile_shape))
    if backend.device is None:
        out = resample_tile(np, region, *args)
        return np.ascontiguousarray(out).tobytes()
    xp = backend.xp
    with xp.cuda.Device(backend.device):
        out = resample_tile(xp, xp.asarray(region), *args)
        return bytes(xp.asnumpy(out).tobytes())
