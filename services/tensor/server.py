"""Wires the tensor service to gRPC, NATS and QUIC.

A job (gRPC ``Resample`` or ``StartResample``) reads its input into a memory map —
an upload is spooled to disk as it arrives — and cuts the output into tiles. Each
tile's input region (taps plus halo) goes as a TileJob to the NATS queue group
``tensor_subject`` (tessera.tensor.tiles); whichever tensor worker takes it computes it (CuPy under a
scheduler lease, else NumPy) and replies with the tile's bytes. The job streams
tiles to the client as they come back, over QUIC (a ticket) or the gRPC stream: a
start frame, the tiles, an end frame with totals — the same frames on both paths.

Memory: a job keeps at most ``tensor_max_tiles`` tiles in flight (a region out or a
result not yet taken by the client); a worker holds at most ``tensor_worker_tiles``
and hands further jobs back ("busy") to be sent again, so neither ever holds more.
A job whose client reads slowly stops sending tiles until the client catches up.

Delivery: core NATS request/reply in a queue group. The coordinator owns the job's
state (its client is attached to it), so it also does redelivery: a tile not answered
in ``tensor_tile_timeout_s`` is sent again, at most ``tensor_tile_attempts`` times.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import nats.errors

from services.tensor.inputs import Spool, TensorInput, nonfinite_message, open_npy
from services.tensor.kernels import Plan
from services.tensor.spec import ResampleRequest, SpecError, dtype_code, make_plan, parse_spec
from services.tensor.tiling import TileBox, TileGrid, auto_tile_shape, input_region, largest_region_bytes, resolve_tile_shape, shape4
from services.tensor.worker import TileWorker
from shared.errors import StatusError, status_error
from shared.gen.tessera.v1 import tensor_pb2, tensor_pb2_grpc
from shared.quic import QuicServer
from shared.runtime import metrics
from shared.runtime.config import Settings
from shared.runtime.gpu import GpuLeases
from shared.runtime.roots import AllowedRoots
from shared.runtime.service import Runtime, main, quic_port

SERVICE = "tensor"
NEEDS = ("nats",)
MESSAGE_OVERHEAD = 4096  # protobuf fields and NATS headers beside a tile's bytes
NO_WORKER_WAIT_S = 5.0

log = logging.getLogger("tessera.tensor")


class TileFailed(StatusError):
    """A tile that could not be computed: its status name and sentence end the job."""


@dataclass
class Job:
    id: str
    plan: Plan
    grid: TileGrid
    source: TensorInput
    workers: set[str] = field(default_factory=set)
    backends: set[str] = field(default_factory=set)
    held: int = 0
    peak_held: int = 0
    worker_peak: int = 0
    closed: bool = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.source.close()

    def start_frame(self) -> tensor_pb2.TensorFrame:
        return tensor_pb2.TensorFrame(start=tensor_pb2.TensorStart(
            job_id=self.id, output_shape=self.plan.output_shape, dtype=dtype_code(self.plan.dtype),
            tiles=len(self.grid), tile_shape=self.grid.tile_shape))


class Coordinator:
    """Receives jobs, sends their tiles to the workers, and streams the results."""

    def __init__(self, settings: Settings, nc: Any) -> None:
        self.settings, self.nc = settings, nc
        self.roots = AllowedRoots(settings.tensor.roots, component="tensor", setting="TESSERA_TENSOR_ROOTS")
        self.spool_dir = settings.path("tensor", "spool")

    @property
    def payload_limit(self) -> int:
        return int(self.nc.max_payload) - MESSAGE_OVERHEAD

    async def receive(self, requests: AsyncIterator[tensor_pb2.ResampleRequest]) -> Job:
        """Read the spec and the upload; a problem raises at once (the server interceptor reads the rest of the upload,
        bounded, before the status goes out: aborting mid-upload would read as INTERNAL)."""
        job_id = uuid.uuid4().hex
        req: ResampleRequest | None = None
        spool: Spool | None = None
        try:
            async for msg in requests:
                if msg.HasField("spec"):
                    if req is not None or spool is not None:
                        raise SpecError("tensor: the spec came twice; send it once, first")
                    req = parse_spec(msg.spec)
                    continue
                if req is None:
                    raise SpecError("tensor: the first message must be the spec")
                if req.input_path:
                    raise SpecError("tensor: give either input_path or uploaded data, not both")
                if spool is None:
                    spool = self._spool(job_id, req)
                if sentence := spool.write(msg.data):
                    raise SpecError(sentence)
            if req is None:
                raise SpecError("tensor: no spec was sent; the first message must be the spec")
            source = self._source(req, spool)
            spool = None
        finally:
            if spool is not None:
                spool.discard()
        try:
            return self._job(job_id, req, source)
        except BaseException:
            source.close()
            raise

    def _spool(self, job_id: str, req: ResampleRequest) -> Spool:
        assert req.input_shape is not None and req.dtype is not None
        size = req.upload_bytes
        if size > self.settings.tensor.max_input_bytes:
            raise SpecError(f"tensor: the input is {size} bytes, over TESSERA_TENSOR_MAX_INPUT_BYTES ({self.settings.tensor.max_input_bytes})")
        return Spool(self.spool_dir / f"{job_id}.npy", req.input_shape, req.dtype, check_finite=not req.allow_nonfinite)

    def _source(self, req: ResampleRequest, spool: Spool | None) -> TensorInput:
        if req.input_path:
            source = open_npy(req.input_path, self.roots, self.settings.tensor.max_input_bytes)
            if not req.allow_nonfinite and (bad := source.first_nonfinite()) is not None:
                source.close()
                raise SpecError(nonfinite_message(bad, source.shape))
            return source
        if spool is None or spool.received != spool.expected:
            got = spool.received if spool else 0
            raise SpecError(f"tensor: the upload ended after {got} of {req.upload_bytes} bytes (input_shape × dtype)")
        if spool.nonfinite_at is not None:
            raise SpecError(nonfinite_message(spool.nonfinite_at, spool.shape))
        return spool.finish()

    def _job(self, job_id: str, req: ResampleRequest, source: TensorInput) -> Job:
        plan = make_plan(req, shape4(source.shape), source.dtype)
        limit = self.payload_limit
        if req.tile_shape is None:
            tile = auto_tile_shape(plan, min(self.settings.tensor.tile_bytes, limit), limit)
        else:
            tile = resolve_tile_shape(req.tile_shape, plan.output_shape)
        out_bytes = math.prod(tile) * plan.dtype.itemsize
        region_bytes = largest_region_bytes(plan, tile)
        if max(out_bytes, region_bytes) > limit:
            raise SpecError(f"tensor: a {list(tile)} tile needs {out_bytes} output bytes and up to {region_bytes} input bytes "
                            f"(with its halo); one bus message carries at most {limit}: choose a smaller tile_shape")
        return Job(job_id, plan, TileGrid(plan.output_shape, tile), source)

    async def frames(self, job: Job) -> AsyncIterator[tensor_pb2.TensorFrame]:
        """start, tiles as they finish, end (or an error frame); never more than tensor_max_tiles in flight."""
        started = time.perf_counter()
        room = asyncio.Semaphore(self.settings.tensor.max_tiles)
        done: asyncio.Queue[tuple[TileBox, tensor_pb2.TileResult] | TileFailed] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def run(box: TileBox) -> None:
            try:
                done.put_nowait((box, await self._tile(job, box)))
            except TileFailed as exc:
                done.put_nowait(exc)
            except Exception as exc:  # boundary: one tile; it fails alone, with its reason
                log.exception("tile failed", extra={"job": job.id, "tile": box.index})
                done.put_nowait(TileFailed("INTERNAL", f"tensor: tile {box.index} failed: {exc}"))

        async def dispatch() -> None:
            for box in job.grid:
                await room.acquire()
                job.held += 1
                job.peak_held = max(job.peak_held, job.held)
                task = asyncio.create_task(run(box))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        dispatcher = asyncio.create_task(dispatch())
        sent_bytes = 0
        try:
            yield job.start_frame()
            for _ in range(len(job.grid)):
                item = await done.get()
                if isinstance(item, TileFailed):
                    yield tensor_pb2.TensorFrame(error=tensor_pb2.TensorError(code=item.code, message=str(item)))
                    return
                box, result = item
                sent_bytes += len(result.data)
                yield tensor_pb2.TensorFrame(tile=tensor_pb2.Tile(index=box.index, offset=box.offset, shape=box.shape,
                                                                  dtype=dtype_code(job.plan.dtype), data=result.data))
                job.held -= 1
                room.release()
            yield tensor_pb2.TensorFrame(end=tensor_pb2.TensorEnd(
                tiles=len(job.grid), bytes=sent_bytes, output_shape=job.plan.output_shape,
                duration_ms=(time.perf_counter() - started) * 1000, workers=sorted(job.workers), backends=sorted(job.backends),
                peak_tiles_held=job.peak_held, worker_peak_tiles=job.worker_peak))
            log.info("resampled", extra={"job": job.id, "tiles": len(job.grid), "bytes": sent_bytes, "workers": len(job.workers),
                                         "ms": round((time.perf_counter() - started) * 1000, 1)})
        finally:
            dispatcher.cancel()
            for task in list(tasks):
                task.cancel()
            job.close()

    async def _tile(self, job: Job, box: TileBox) -> tensor_pb2.TileResult:
        region = input_region(job.plan, box)
        data = await asyncio.to_thread(job.source.read, region.slices())
        message = tensor_pb2.TileJob(
            job_id=job.id, index=box.index, kernel=tensor_pb2.KERNEL_KEYS if job.plan.kernel == "keys" else tensor_pb2.KERNEL_BSPLINE,
            dtype=dtype_code(job.plan.dtype), input_shape=job.plan.input_shape, output_shape=job.plan.output_shape,
            tile_offset=box.offset, tile_shape=box.shape, region_offset=region.offset, region_shape=region.shape, data=data,
        ).SerializeToString()
        del data
        attempts = 0
        loop = asyncio.get_running_loop()
        no_worker_since: float | None = None
        timeout = self.settings.tensor.tile_timeout_s
        while True:
            try:
                reply = await self.nc.request(self.settings.tensor.subject, message, timeout=timeout)
            except nats.errors.NoRespondersError:
                no_worker_since = no_worker_since or loop.time()
                if loop.time() - no_worker_since > NO_WORKER_WAIT_S:
                    raise TileFailed("UNAVAILABLE", f"tensor: no tensor worker is subscribed to {self.settings.tensor.subject}; "
                                     "start one (TESSERA_TENSOR_WORKER=on)") from None
                await asyncio.sleep(0.1)
                continue
            except nats.errors.TimeoutError:
                attempts += 1
                log.warning("tile not answered, sending it again", extra={"job": job.id, "tile": box.index, "attempt": attempts})
                if attempts >= self.settings.tensor.tile_attempts:
                    raise TileFailed("UNAVAILABLE", f"tensor: tile {box.index} was not answered in {attempts} tries of "
                                     f"{timeout:g} s (TESSERA_TENSOR_TILE_TIMEOUT_S)") from None
                continue
            no_worker_since = None
            result = tensor_pb2.TileResult.FromString(reply.data)
            if result.busy:  # every worker it could reach was full: try again shortly (another may have room)
                await asyncio.sleep(0.002 + random.random() * 0.01)
                continue
            if result.error.code:
                raise TileFailed(result.error.code, result.error.message)
            expected = box.size * job.plan.dtype.itemsize
            if len(result.data) != expected:
                raise TileFailed("INTERNAL", f"tensor: worker {result.worker_id} returned {len(result.data)} bytes for tile "
                                 f"{box.index}, expected {expected}")
            job.workers.add(result.worker_id)
            job.backends.add(result.backend)
            job.worker_peak = max(job.worker_peak, result.held)
            return result


class TensorHandlers:
    def __init__(self, coordinator: Coordinator, quic: QuicServer) -> None:
        self.coordinator, self.quic = coordinator, quic

    async def Resample(self, requests: AsyncIterator[tensor_pb2.ResampleRequest],
                       context: grpc.aio.ServicerContext) -> AsyncIterator[tensor_pb2.TensorFrame]:
        """The gRPC path: the same frames as a StartResample ticket's QUIC stream; a failed tile also ends the call with its code."""
        job = await self.coordinator.receive(requests)
        async for frame in self.coordinator.frames(job):
            yield frame
            if frame.HasField("error"):
                raise status_error(frame.error.code, frame.error.message)

    async def StartResample(self, requests: AsyncIterator[tensor_pb2.ResampleRequest],
                            context: grpc.aio.ServicerContext) -> tensor_pb2.StartResampleResponse:
        """The QUIC path: input and checks happen in this call (errors are its status); tiles stream to the ticket's holder."""
        job = await self.coordinator.receive(requests)
        ticket = self.quic.issue(tensor_pb2.TensorFrame.DESCRIPTOR.full_name, lambda: self.coordinator.frames(job), on_expire=job.close)
        return tensor_pb2.StartResampleResponse(ticket=ticket, job_id=job.id, output_shape=job.plan.output_shape, tiles=len(job.grid))


async def setup(rt: Runtime) -> None:
    settings = rt.settings
    assert rt.nc is not None
    quic = await QuicServer(settings, port=quic_port(settings.tensor.quic_port)).start()
    rt.host.on_drain(quic.drain)
    rt.host.on_close(quic.close)
    coordinator = Coordinator(settings, rt.nc)
    handlers = TensorHandlers(coordinator, quic)
    rt.host.add_service(tensor_pb2, tensor_pb2_grpc, "TensorService", Resample=handlers.Resample, StartResample=handlers.StartResample)
    if settings.tensor.worker == "on":
        leases = None
        if settings.tensor.backend != "numpy":
            leases = GpuLeases(settings, rt.channels, SERVICE, rt.instance_id)
            rt.host.on_close(leases.close)
        worker = TileWorker(settings, rt.nc, rt.instance_id, leases)
        await worker.start()
        tile_worker = worker

        async def tile_metrics() -> None:
            metrics.TENSOR_TILES.set(tile_worker.held)

        metrics.on_scrape(tile_metrics)
        rt.host.on_drain(worker.drain)

        async def worker_ready() -> str:
            kind = "simulated devices" if settings.tensor.backend == "simulated" else "CuPy"
            gpu = f", {kind} on {worker.gpus} device(s) under scheduler leases" if worker.gpus else ", NumPy"
            return f"tile worker: {worker.computed} tiles, holding {worker.held}/{settings.tensor.worker_tiles}{gpu}"

        rt.host.add_dependency("tile-worker", worker_ready, required=False)


def run() -> None:
    main(SERVICE, NEEDS, setup)
