"""GPU probes for tests: skip only when this host has no GPU (no CuPy, no driver, no device); re-raise anything else.

A probe that turned every exception into a skip would hide a broken GPU path on a host that has a GPU.
"""

from __future__ import annotations

from typing import Any

import pytest

#: CUDA runtime errors that mean "no usable GPU here", not "the code is broken".
NO_GPU_CUDA = ("cudaErrorNoDevice", "cudaErrorInsufficientDriver", "cudaErrorNotPermitted", "cudaErrorSystemDriverMismatch")


def cupy_or_skip() -> Any:
    """The cupy module with at least one device, or a skip saying why there is none."""
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("CuPy is not installed on this host (`make setup-gpu` installs it on a GPU host)")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        if any(name in str(exc) for name in NO_GPU_CUDA):
            pytest.skip(f"no CUDA device or driver on this host: {exc}")
        raise
    if count == 0:
        pytest.skip("CUDA reports no device on this host")
    return cupy


def nvml_or_skip() -> Any:
    """An NvmlSource over this host's devices, or a skip when there is no NVIDIA driver or device."""
    import pynvml

    from services.scheduler.devices import NvmlSource

    no_gpu = tuple(getattr(pynvml, name) for name in ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded", "NVMLError_NoPermission")
                   if hasattr(pynvml, name))
    try:
        source = NvmlSource()
    except no_gpu as exc:
        pytest.skip(f"no NVIDIA driver on this host: {exc}")
    if source.count == 0:
        pytest.skip("NVML found no device on this host")
    return source
