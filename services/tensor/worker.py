"""A tensor service's tile worker: it takes tile jobs from the NATS queue group (one worker per job), computes each
tile on the backend its GPU lease allows (CuPy on a device, NumPy otherwise) and replies with the tile or its error."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from services.tensor.backend import NUMPY, Backend, compute_tile, cupy_backend, cupy_device_count, simulated_backend, tile_bytes_needed
from shared.gen.tessera.v1 import tensor_pb2
from shared.runtime.config import Settings
from shared.runtime.gpu import GpuLeases, Priority, on_gpu
from shared.runtime.tasks import finish_by

log = logging.getLogger("tessera.tensor")
WORKER_QUEUE = "tensor-workers"


class TileWorker:
    """Takes TileJobs from the queue group; holds at most tensor_worker_tiles, computes tensor_worker_threads at once."""

    def __init__(self, settings: Settings, nc: Any, worker_id: str, leases: GpuLeases | None) -> None:
        self.settings, self.nc, self.worker_id, self.leases = settings, nc, worker_id, leases
        self.held = 0
        self.computed = 0
        self._compute = asyncio.Semaphore(settings.tensor.worker_threads)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None
        self.gpus = 0
        if leases is not None and settings.tensor.backend == "auto":
            self.gpus = cupy_device_count()
        elif leases is not None and settings.tensor.backend == "simulated":
            self.gpus = len(settings.scheduler.sim_gib)

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(self.settings.tensor.subject, queue=WORKER_QUEUE, cb=self._on_job)

    async def drain(self, timeout: float) -> None:
        """Take no new tile, finish the tiles held within ``timeout`` seconds, cancel the rest (the coordinator
        sends those tiles again to another worker)."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        await finish_by(list(self._tasks), timeout)

    async def _on_job(self, msg: Msg) -> None:
        if self.held >= self.settings.tensor.worker_tiles:
            await msg.respond(tensor_pb2.TileResult(busy=True, worker_id=self.worker_id, held=self.held).SerializeToString())
            return
        self.held += 1
        log.debug("tile taken", extra={"held": self.held})
        task = asyncio.create_task(self._work(msg, self.held))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _work(self, msg: Msg, held: int) -> None:
        index = 0
        try:
            job = tensor_pb2.TileJob.FromString(msg.data)
            index = job.index
            async with self._compute:
                backend, release = await self._backend(job)
                try:
                    data = await asyncio.to_thread(compute_tile, backend, job)
                finally:
                    await release()
            self.computed += 1
            result = tensor_pb2.TileResult(index=index, data=data, worker_id=self.worker_id, backend=backend.name, held=held)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # boundary: one tile; it fails alone, with its reason, and the job goes on
            log.exception("tile failed", extra={"tile": index})
            result = tensor_pb2.TileResult(index=index, worker_id=self.worker_id, held=held, error=tensor_pb2.TensorError(
                code="INTERNAL", message=f"tensor: tile {index} failed on worker {self.worker_id}: {exc}"))
        try:
            await msg.respond(result.SerializeToString())
            log.debug("tile answered", extra={"tile": index})
        finally:
            self.held -= 1

    async def _backend(self, job: tensor_pb2.TileJob) -> tuple[Backend, Any]:
        """CuPy on the leased device when the scheduler grants one right away; NumPy otherwise."""
        async def nothing() -> None:
            return None

        if not self.gpus or self.leases is None:
            return NUMPY, nothing
        leases = self.leases
        try:
            lease = await leases.acquire(Priority.PRIORITY_TENSOR_BATCH, tile_bytes_needed(job), max_wait_ms=0, keep=False)
        except grpc.aio.AioRpcError as exc:
            log.info("no GPU lease for a tile, using NumPy", extra={"reason": exc.details() or exc.code().name})
            return NUMPY, nothing

        async def release() -> None:
            await leases.release(lease)

        if on_gpu(lease) and lease.device_index < self.gpus:
            if self.settings.tensor.backend == "simulated":
                return simulated_backend(lease.device_index), release
            return cupy_backend(lease.device_index), release
        return NUMPY, release


