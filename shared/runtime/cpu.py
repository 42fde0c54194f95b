"""One CPU budget for the mesh: how many threads each kind of work runs, so the work that can run at once never asks
for more cores than the mesh has (``TESSERA_CPU_CORES``, else the cores this process may run on).

What may run at the same time, and its share:
- **answers** (llama.cpp in chat): the cores, shared out among the slots generating right now (:class:`SlotThreads`):
  one answer alone gets every core, two get half each. An answer alone decodes its tokens on every core but
  :data:`STREAM_CORES` (its prompt runs on all): its own per-token work in chat's event loop and the gateway then runs
  beside the model instead of stopping it. Enrichment runs in a slot too, only when no answer does;
- **embedding** (ONNX in embed): a text per core, and it pauses while an answer or a search runs
  (``shared.runtime.foreground``), so it never runs beside them;
- **a search**: its query on one ONNX thread, its statements in PostgreSQL without parallel workers below
  :data:`PARALLEL_FROM` cores (a worker per further :data:`PARALLEL_FROM` cores above that);
- **upkeep** (topic clusters and the map: scikit-learn and NumPy's OpenMP/BLAS pools in search):
  :func:`upkeep_threads`, a quarter of the cores, at least one, whatever else runs.

llama.cpp's prompt threads, embed's texts and upkeep's native pools are sized from this budget, not from the machine's
core count (each would otherwise take every core).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Cores an answer alone leaves free while it decodes (its prompt steps still run on every core). Each answer token costs
#: the mesh 2.5-4 ms of CPU outside the model (chat's event loop about 1.0-1.4, the gateway 1.1-1.3, the client 0.5:
#: bench-chat's stages_ms); with the model on every core that work preempts one of its threads, and the others wait
#: for it at ggml's barrier. Through the mesh on 2 cores (bench-chat, 2026-12-07): SmolLM2 56-62 tokens/s on 2 threads,
#: 80-83 on 1; Qwen2.5-Coder 1.5B 19.6 on 2, 22.3 on 1 (in process, with nothing else running, 2 threads win: 29.7
#: against 21.1, bench-threads).
STREAM_CORES = 1
#: Below this many cores PostgreSQL runs each statement on its own backend; above, one parallel worker per as many more.
PARALLEL_FROM = 4


def mesh_cores(configured: int = 0) -> int:
    """The cores the mesh shares out: ``configured`` (``TESSERA_CPU_CORES``) when set, else this process's CPUs."""
    if configured > 0:
        return configured
    return len(os.sched_getaffinity(0)) or 1


def upkeep_threads(cores: int) -> int:
    """Threads for background upkeep's native pools (k-means, t-SNE, silhouettes): a quarter of the cores, at least 1."""
    return max(1, cores // 4)


def postgres_parallel_workers(cores: int) -> int:
    """PostgreSQL's ``max_parallel_workers_per_gather``: none below PARALLEL_FROM cores, then one per PARALLEL_FROM."""
    return cores // PARALLEL_FROM


@contextmanager
def native_threads(n: int) -> Iterator[None]:
    """Hold the OpenMP and BLAS pools loaded in this process (scikit-learn's, NumPy's) to ``n`` threads inside. Only the
    libraries already loaded are held, and OpenMP's limit belongs to the calling thread: import what the work uses
    first, and enter this in the thread that does the work (inside ``asyncio.to_thread``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield


class SlotThreads:
    """The cores shared out among the model slots generating now: each gets ``cores // busy`` (at least 1), so the
    slots together never run more threads than cores (as long as there are no more busy slots than cores).

    A slot enters when it starts a prompt and leaves when its answer ends; it asks :meth:`share` before each prefill
    step and each token, so an answer alone speeds up once another ends, and slows down while another runs.

    Background work (enrichment) runs only while no answer does and stops within a graph operation once one starts
    (ChatModel.generate(abortable=True)): an answer's share leaves it out, so the answer's first step is not cut to
    half the cores for a job that is already leaving (with Qwen 1.5B on 2 cores its 7-token prompt took 250 ms on one
    thread against 135 ms on two)."""

    def __init__(self, cores: int, fixed: int = 0, stream_cores: int = STREAM_CORES) -> None:
        self.cores, self.fixed, self.stream_cores = max(1, cores), fixed, stream_cores
        self._busy = 0
        self._background = 0  # of the busy slots, those running background work
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        return self._busy

    def share(self, background: bool = False) -> int:
        """Threads for one busy slot now: ``fixed`` when set (``TESSERA_CHAT_THREADS``), else the cores over the busy
        slots (for an answer, the busy slots answering: background work is yielding to it)."""
        if self.fixed > 0:
            return self.fixed
        return max(1, self.cores // max(1, self._busy if background else self._busy - self._background))

    def decode_share(self, share: int) -> int:
        """Threads for the answer tokens of a slot given ``share``: ``stream_cores`` fewer (at least one) when the slot
        is alone on every core; else ``share``. ``fixed`` is kept as it is."""
        if self.fixed > 0 or share < self.cores:
            return share
        return max(1, share - self.stream_cores)

    @contextmanager
    def running(self, background: bool = False) -> Iterator[None]:
        with self._lock:
            self._busy += 1
            self._background += background
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1
                self._background -= background
