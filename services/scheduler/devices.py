"""Where device memory figures come from: NVML on a GPU host, or a simulator.

Both stand behind :class:`DeviceSource`, so the scheduler's code is the same with
or without a GPU; tests and the benchmark use the simulator.
"""

from __future__ import annotations

import logging
from typing import Protocol

from services.scheduler.policy import GIB, Device
from shared.errors import ConfigError

log = logging.getLogger("tessera.scheduler")
SETTING = "TESSERA_SCHEDULER_DEVICES"


class DeviceSource(Protocol):
    name: str

    def read(self) -> list[Device]: ...


class SimulatedSource:
    """Devices of fixed sizes with nothing else using them."""

    name = "simulated"

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes

    def read(self) -> list[Device]:
        return [Device(i, f"simulated-{i}", size, size, 0.0, "simulated") for i, size in enumerate(self.sizes)]


class NvmlSource:
    """Live figures from NVIDIA's management library (nvidia-ml-py)."""

    name = "nvml"

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self.count = pynvml.nvmlDeviceGetCount()

    def read(self) -> list[Device]:
        nv = self._nvml
        out = []
        for i in range(self.count):
            handle = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(handle)
            try:
                util = nv.nvmlDeviceGetUtilizationRates(handle).gpu / 100
            except nv.NVMLError:
                util = 0.0
            name = nv.nvmlDeviceGetName(handle)
            out.append(Device(i, name.decode() if isinstance(name, bytes) else str(name), int(mem.total), int(mem.free), util, "nvml"))
        return out


def detect(mode: str, sim_gib: list[str]) -> DeviceSource | None:
    """The device source for a TESSERA_SCHEDULER_DEVICES mode; None means CPU-only."""
    if mode == "none":
        return None
    if mode == "simulated":
        return SimulatedSource([int(float(g) * GIB) for g in sim_gib])
    try:
        source = NvmlSource()
    except Exception as exc:  # noqa: BLE001 — boundary: probing the driver; no driver, no library, no device all mean CPU-only
        if mode == "nvml":
            raise ConfigError(SETTING, f"nvml was asked for but NVML is unusable ({exc})") from None
        log.info("no NVML: CPU-only mode", extra={"reason": str(exc)})
        return None
    if source.count == 0:
        if mode == "nvml":
            raise ConfigError(SETTING, "nvml was asked for but NVML reports no device")
        return None
    return source
