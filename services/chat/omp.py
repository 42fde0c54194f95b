"""llama.cpp's CPU threads are OpenMP's (libgomp), and libgomp's workers spin only while it manages no more threads
than the process has CPUs.

Each thread that runs a multi-threaded llama.cpp step keeps its own pool of OpenMP workers for its next step. The
chat service runs its model calls on asyncio's worker threads (two slots, the answer check, enrichment), so after a
few answers several threads each keep a pool. libgomp then counts more threads than CPUs, and at each of a step's
hundreds of barriers its workers stop spinning after 100 turns instead of 300,000 and sleep on a futex. Measured on
2 cores (SmolLM2-135M, the 8 new tokens of a question): 30-33 ms when one thread makes every call; 60-68 ms, with
over 1,000 context switches per step, when two threads take turns, which is what the service did (its prefill ran
55-70 ms against the raw model's 32).

:func:`release` hands the calling thread's pool back (``omp_pause_resource_all``, OpenMP 5.0) when a model call ends,
so only the calls running hold workers. The next call's first step starts its worker again, tens of microseconds.
A build without OpenMP has no libgomp loaded, and then there is nothing to release.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import Any

OMP_PAUSE_SOFT = 1
_libs: list[Any] | None = None
_lock = threading.Lock()


def loaded_libgomp() -> list[Any]:
    """The libgomp copies this process has loaded (their ``omp_pause_resource_all``), found in /proc/self/maps and
    opened without loading anything new (RTLD_NOLOAD). Looked up once, after llama.cpp has loaded."""
    global _libs
    with _lock:
        if _libs is None:
            try:
                maps = Path("/proc/self/maps").read_text()
            except OSError:
                maps = ""
            paths = sorted({line.split(maxsplit=5)[-1] for line in maps.splitlines()
                            if line.count(" ") >= 5 and Path(line.split(maxsplit=5)[-1]).name.startswith("libgomp")})
            found = []
            for path in paths:
                try:
                    lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
                except OSError:
                    continue
                pause = getattr(lib, "omp_pause_resource_all", None)  # GCC 9 and later
                if pause is not None:
                    pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
                    found.append(pause)
            _libs = found
        return _libs


def release() -> None:
    """Give back the OpenMP workers the calling thread keeps (call it in the thread that ran the model, after the call)."""
    for pause in loaded_libgomp():
        pause(OMP_PAUSE_SOFT)
