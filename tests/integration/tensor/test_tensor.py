"""The tensor service as real processes: two tensor instances (each a coordinator and a tile worker) on the
session's NATS, tiles over QUIC and gRPC, inputs uploaded or by path, refusals, memory bounds, a lost worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from helpers import ROOT, Launcher, ServiceProcess, child_env, mesh_channel, wait_serving
from seeds import SEED
from tensor_reference import bspline_reference, keys_reference, rel_err

from services.tensor.kernels import Plan, resample
from shared.client.tensor import ResampleResult, Stitcher, TensorError, requests_for, spec_for
from shared.client.tensor import resample as run_job
from shared.gen.tessera.v1 import scheduler_pb2, scheduler_pb2_grpc, tensor_pb2, tensor_pb2_grpc
from shared.ops.infra import free_port
from shared.quic import QuicClient
from shared.runtime.config import Settings

RNG = np.random.default_rng(SEED)
MAX_TILES, WORKER_TILES = 3, 2


def volume(shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
    return (RNG.standard_normal(shape) + RNG.uniform(-2, 2)).astype(dtype)


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tensor-roots")


@dataclass
class TensorMesh:
    settings: Settings  # reaches process A
    procs: list[ServiceProcess]
    env: dict[str, str]  # what every tensor process of this module runs with


@pytest.fixture(scope="module")
def tensor(infra: Settings, launcher: Launcher, roots: Path) -> Iterator[TensorMesh]:
    """Two tensor processes on their own tile subject: A (the one called) and B (a second worker)."""
    subject = f"tessera.test.{uuid.uuid4().hex[:8]}.tiles"
    common = {"TESSERA_TENSOR_SUBJECT": subject, "TESSERA_TENSOR_ROOTS": str(roots), "TESSERA_TENSOR_MAX_TILES": str(MAX_TILES),
              "TESSERA_TENSOR_WORKER_TILES": str(WORKER_TILES), "TESSERA_TENSOR_TILE_TIMEOUT_S": "3",
              "TESSERA_TENSOR_TILE_BYTES": str(256 * 1024)}
    a = infra.with_overrides(tensor_port=free_port())
    b = infra.with_overrides(tensor_port=free_port())
    procs = [launcher.start("tensor", a, **common), launcher.start("tensor", b, **common)]
    try:
        wait_serving(a, procs[:1])
        wait_serving(b, procs[1:])
        yield TensorMesh(a, procs, common)
    finally:
        for p in procs:  # they registered with the session's NATS: leave nothing behind
            p.stop()


@pytest.fixture
async def stub(tensor: TensorMesh) -> AsyncIterator[tensor_pb2_grpc.TensorServiceStub]:
    async with mesh_channel(tensor.settings, tensor.settings.address("tensor")) as ch:
        yield tensor_pb2_grpc.TensorServiceStub(ch)


@pytest.fixture
async def quic(tensor: TensorMesh) -> AsyncIterator[QuicClient]:
    client = QuicClient(tensor.settings)
    yield client
    await client.close()


def in_memory() -> Stitcher:
    return Stitcher(lambda shape, dtype: np.full(shape, np.nan, dtype=dtype))


def comparable(frames: list[tensor_pb2.TensorFrame]) -> list[bytes]:
    """Frames with what differs between runs cleared (ids, timings, which worker), tiles in index order."""
    out = []
    for f in frames:
        f = tensor_pb2.TensorFrame.FromString(f.SerializeToString())
        kind = f.WhichOneof("frame")
        if kind == "start":
            f.start.job_id = ""
        if kind == "end":
            f.end.duration_ms = 0
            del f.end.workers[:]
            f.end.peak_tiles_held = f.end.worker_peak_tiles = 0
        out.append((kind != "start", kind == "end", f.tile.index if kind == "tile" else 0, f.SerializeToString()))
    return [blob for *_, blob in sorted(out)]


async def test_quic_and_grpc_deliver_identical_frames_and_the_right_tensor(stub: Any, quic: QuicClient) -> None:
    v = volume((2, 11, 13, 9))
    spec = spec_for("keys", zoom=(2.0, 1.5, 0.7), tile_shape=(1, 5, 4, 0))
    a, b = in_memory(), in_memory()
    over_quic = await run_job(stub, spec, v, a, quic=quic, keep_frames=True)
    spec = spec_for("keys", zoom=(2.0, 1.5, 0.7), tile_shape=(1, 5, 4, 0))
    over_grpc = await run_job(stub, spec, v, b, keep_frames=True)
    assert comparable(over_quic.frames) == comparable(over_grpc.frames)
    plan = Plan("keys", np.dtype(np.float32), v.shape, (2, 22, 20, 6))  # type: ignore[arg-type]
    assert over_quic.start is not None and tuple(over_quic.start.output_shape) == plan.output_shape
    assert over_quic.start.tiles == 2 * 5 * 5 == over_quic.tiles
    assert np.array_equal(a.output, resample(np, v, plan))  # stitched tiles == the untiled result, bit for bit
    assert np.array_equal(a.output, b.output)
    assert rel_err(a.output, keys_reference(v, plan.output_shape[1:])) < 1e-5
    end = over_quic.end
    assert end is not None and end.tiles == 50 and end.bytes == a.output.nbytes and end.backends == ["numpy"]


@pytest.mark.parametrize(("dtype", "tol"), [(np.float32, 1e-5), (np.float64, 1e-12)])
async def test_bspline_over_the_service_matches_scipy(stub: Any, quic: QuicClient, dtype: Any, tol: float) -> None:
    v = volume((2, 16, 21, 12), dtype)
    out = in_memory()
    result = await run_job(stub, spec_for("bspline", zoom=(2.0, 0.6, 1.4), tile_shape=(1, 7, 5, 6)), v, out, quic=quic)
    want = bspline_reference(v, (2.0, 0.6, 1.4))
    assert out.output.dtype == dtype and out.output.shape == want.shape
    assert rel_err(out.output, want) < tol
    plan = Plan("bspline", np.dtype(dtype), v.shape, want.shape)  # type: ignore[arg-type]
    assert np.array_equal(out.output, resample(np, v, plan))
    assert result.tiles > 1


async def test_two_workers_share_tiles_and_a_slow_reader_keeps_memory_bounded(stub: Any, quic: QuicClient) -> None:
    v = volume((4, 24, 24, 24))
    spec = spec_for("bspline", zoom=(2.0, 2.0, 2.0), tile_shape=(1, 8, 16, 0))
    reply = await stub.StartResample(requests_for(spec, v), timeout=60)
    assert reply.tiles == 4 * 6 * 3 and tuple(reply.output_shape) == (4, 48, 48, 48)
    stream = await quic.open(reply.ticket, tensor_pb2.TensorFrame)
    out = in_memory()
    frames = []
    async for frame in stream:
        frames.append(frame)
        kind = frame.WhichOneof("frame")
        if kind == "start":
            out.start(frame.start)
        elif kind == "tile":
            out.tile(frame.tile)
            if len(frames) == 3:
                await asyncio.sleep(1.5)  # a stalled reader: the service must not run ahead of it
    end = frames[-1].end
    assert frames[-1].HasField("end") and end.tiles == 72
    assert len(end.workers) == 2, "both tensor processes took tiles from the queue group"
    assert 1 <= end.peak_tiles_held <= MAX_TILES and 1 <= end.worker_peak_tiles <= WORKER_TILES
    assert np.array_equal(out.output, resample(np, v, Plan("bspline", np.dtype(np.float32), v.shape, (4, 48, 48, 48))))  # type: ignore[arg-type]


async def test_input_by_path_under_the_roots(stub: Any, quic: QuicClient, roots: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    v = volume((1, 9, 8, 7), np.float64)
    inside = roots / "scan.npy"
    np.save(inside, v)
    fortran = roots / "scan-f.npy"
    np.save(fortran, np.asfortranarray(v))
    big_endian = roots / "scan-be.npy"
    np.save(big_endian, v.astype(">f8"))
    want = resample(np, v, Plan("keys", np.dtype(np.float64), v.shape, (1, 18, 16, 14)))  # type: ignore[arg-type]
    for path in (inside, fortran, big_endian):
        spec = spec_for("keys", zoom=(2, 2, 2))
        spec.input_path = str(path)
        out = in_memory()
        await run_job(stub, spec, None, out, quic=quic)
        assert np.array_equal(out.output, want), path.name

    elsewhere = tmp_path_factory.mktemp("not-a-root") / "x.npy"
    np.save(elsewhere, v)
    (roots / "notes.txt").write_text("not a tensor")
    np.save(roots / "flat.npy", v[0])
    np.save(roots / "ints.npy", v.astype(np.int32))
    (roots / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    cases = [
        (elsewhere, grpc.StatusCode.PERMISSION_DENIED, "outside the configured roots"),
        (roots / "missing.npy", grpc.StatusCode.NOT_FOUND, "does not exist"),
        (roots / "notes.txt", grpc.StatusCode.INVALID_ARGUMENT, "is not a .npy file"),
        (roots / "flat.npy", grpc.StatusCode.INVALID_ARGUMENT, "3-D array"),
        (roots / "ints.npy", grpc.StatusCode.INVALID_ARGUMENT, "int32 values"),
        (roots / "broken.npy", grpc.StatusCode.INVALID_ARGUMENT, "not a readable .npy"),
    ]
    for path, code, words in cases:
        spec = spec_for("keys", zoom=(2, 2, 2))
        spec.input_path = str(path)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.StartResample(requests_for(spec, None), timeout=20)
        assert err.value.code() == code and words in err.value.details(), (path, err.value.details())


async def upload_error(stub: Any, requests: list[tensor_pb2.ResampleRequest], *, grpc_path: bool) -> grpc.aio.AioRpcError:
    async def gen() -> AsyncIterator[tensor_pb2.ResampleRequest]:
        for r in requests:
            yield r

    with pytest.raises(grpc.aio.AioRpcError) as err:
        if grpc_path:
            async for _ in stub.Resample(gen(), timeout=20):
                pass
        else:
            await stub.StartResample(gen(), timeout=20)
    return err.value


async def test_bad_requests_are_refused_with_a_sentence_and_nothing_else_is_lost(stub: Any, quic: QuicClient) -> None:
    v = volume((1, 4, 5, 6))
    good = bytes(v.tobytes())

    def spec(**kw: Any) -> tensor_pb2.ResampleSpec:
        base = {"kernel": tensor_pb2.KERNEL_KEYS, "dtype": tensor_pb2.DTYPE_FLOAT32, "input_shape": [1, 4, 5, 6], "zoom": [2, 2, 2]}
        base.update(kw)
        return tensor_pb2.ResampleSpec(**base)

    def req(s: tensor_pb2.ResampleSpec, *data: bytes) -> list[tensor_pb2.ResampleRequest]:
        return [tensor_pb2.ResampleRequest(spec=s), *(tensor_pb2.ResampleRequest(data=d) for d in data)]

    nan = v.copy()
    nan[0, 2, 3, 4] = np.nan
    cases = [
        (req(spec(kernel=0), good), "kernel is required"),
        (req(spec(output_shape=[8, 8, 8]), good), "exactly one of zoom"),
        (req(spec(zoom=[2, 2]), good), "zoom needs 3 factors"),
        (req(spec(zoom=[2, 0, 2]), good), "above 0"),
        (req(spec(zoom=[], output_shape=[8, 0, 8]), good), "at least 1"),
        (req(spec(zoom=[0.1, 1, 1]), good), "leaves no output sample"),
        (req(spec(tile_shape=[1, 2, 3]), good), "tile_shape needs 4"),
        (req(spec(input_shape=[]), good), "needs input_shape"),
        (req(spec(input_shape=[1, 4, 5]), good), "input_shape needs 4"),
        (req(spec(dtype=7), good), "not supported"),
        (req(spec(), good[:-8]), "ended after 472 of 480 bytes"),
        (req(spec(), good, b"\0\0\0\0"), "longer than input_shape"),
        (req(spec()), "ended after 0 of 480 bytes"),
        (req(spec(), nan.tobytes()), "NaN or Inf (first at [0, 2, 3, 4])"),
        ([tensor_pb2.ResampleRequest(data=good)], "first message must be the spec"),
        (req(spec(), good) + req(spec()), "spec came twice"),
        (req(spec(input_path="/tmp/x.npy"), good), "either input_path or uploaded data"),
        (req(spec(input_shape=[1, 40, 50, 60], zoom=[8, 8, 8], tile_shape=[0, 0, 0, 0]), bytes(480000)), "one bus message carries at most"),
    ]
    for i, (requests, words) in enumerate(cases):
        err = await upload_error(stub, requests, grpc_path=i % 2 == 0)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and words in (err.details() or ""), (words, err.details())

    # allowed explicitly, NaN flows through; and the service still answers good requests after all that
    out = in_memory()
    await run_job(stub, spec_for("keys", zoom=(2, 2, 2), allow_nonfinite=True), nan, out, quic=quic)
    assert np.isnan(out.output).any() and np.isfinite(out.output[0, :, :2]).all()  # NaN only reaches outputs whose taps read it
    out = in_memory()
    await run_job(stub, spec_for("keys", zoom=(2, 2, 2)), v, out)
    assert np.array_equal(out.output, resample(np, v, Plan("keys", np.dtype(np.float32), v.shape, (1, 8, 10, 12))))  # type: ignore[arg-type]


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


async def test_a_large_upload_never_sits_in_the_service_memory(tensor: TensorMesh, stub: Any,
                                                               quic: QuicClient) -> None:
    # 96 MiB in; the coordinator spools it to disk and reads one tile's region at a time.
    v = np.lib.stride_tricks.as_strided(volume((1, 8, 64, 64)), shape=(6, 64, 256, 256), strides=(0, 0, 0, 0)).copy()
    v += RNG.standard_normal(v.shape[1:], dtype=np.float32)[None]
    size_kib = v.nbytes // 1024
    pid = tensor.procs[0].proc.pid
    before = vm_hwm_kib(pid)
    out = in_memory()
    result = await run_job(stub, spec_for("keys", zoom=(0.5, 0.5, 0.5)), v, out, quic=quic)
    grew = vm_hwm_kib(pid) - before
    assert result.end is not None and result.end.peak_tiles_held <= MAX_TILES
    # Half the input: CI (2 cores, slow disk) measured 40 MiB of growth for 96 MiB, the QUIC receive buffers
    # filling while the spool writes; holding the whole upload would grow it by at least 96 MiB.
    assert grew < size_kib // 2, f"the coordinator's peak memory grew by {grew} KiB for a {size_kib} KiB input"
    want = resample(np, v[:1], Plan("keys", np.dtype(np.float32), (1, *v.shape[1:]), (1, 32, 128, 128)))  # type: ignore[arg-type]
    assert np.array_equal(out.output[:1], want)
    assert not list(tensor.settings.path("tensor", "spool").glob("*.npy")), "the spool file is removed when the job ends"


def test_cli_resamples_a_file_with_progress(tensor: TensorMesh, tmp_path: Path) -> None:
    v = volume((2, 10, 12, 8))
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, v)
    env = child_env(tensor.settings)
    for extra in ([], ["--grpc"]):
        dst.unlink(missing_ok=True)
        run = subprocess.run([sys.executable, "-m", "shared.cli", "tensor", "resample", str(src), str(dst), "--zoom", "2", "2", "2",
                              "--kernel", "keys", "--tile", "1", "4", "0", "0", *extra], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "tiles" in run.stderr and "10 tiles" in run.stdout and "(2, 20, 24, 16)" in run.stdout
        want = resample(np, v, Plan("keys", np.dtype(np.float32), v.shape, (2, 20, 24, 16)))  # type: ignore[arg-type]
        assert np.array_equal(np.load(dst), want)
    np.save(src, v[0])
    run = subprocess.run([sys.executable, "-m", "shared.cli", "tensor", "resample", str(src), str(dst), "--zoom", "2", "2", "2"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "3-D array" in run.stdout + run.stderr


async def test_a_worker_lost_mid_job_costs_a_retry_not_the_job(tensor: TensorMesh, stub: Any,
                                                               launcher: Launcher, quic: QuicClient) -> None:
    # a third worker that dies after the job starts: its tiles are not answered and go again (timeout 3 s)
    third = tensor.settings.with_overrides(tensor_port=free_port())
    c = launcher.start("tensor", third, **tensor.env)
    await asyncio.to_thread(wait_serving, third, [c])
    v = volume((6, 20, 20, 20))
    reply = await stub.StartResample(requests_for(spec_for("bspline", zoom=(2, 2, 2), tile_shape=(1, 5, 0, 0)), v), timeout=60)
    stream = await quic.open(reply.ticket, tensor_pb2.TensorFrame)
    out = in_memory()
    got = ResampleResult()
    killed_holding = False

    def holding() -> bool:  # the third worker has taken more tiles than it answered: it holds one now
        log = c.output()
        return log.count('"tile taken"') > log.count('"tile answered"')

    async for frame in stream:
        kind = frame.WhichOneof("frame")
        if kind == "start":
            out.start(frame.start)
        elif kind == "tile":
            out.tile(frame.tile)
            got.tiles += 1
            if c.proc.poll() is None and holding():
                os.kill(c.proc.pid, signal.SIGKILL)
                c.proc.wait(10)
                killed_holding = holding()  # still: it died with the tile
        elif kind == "end":
            got.end = frame.end
        else:
            raise TensorError(frame.error.message)
    assert killed_holding, "the worker must die while it holds a tile"
    assert got.end is not None and got.tiles == reply.tiles == 48
    assert "tile not answered, sending it again" in tensor.procs[0].output(), "the lost tile must have been sent again"
    assert np.array_equal(out.output, resample(np, v, Plan("bspline", np.dtype(np.float32), v.shape, (6, 40, 40, 40))))  # type: ignore[arg-type]


async def test_workers_lease_a_gpu_from_the_scheduler_and_give_it_back(infra: Settings, launcher: Launcher) -> None:
    # A simulated device (the hardware this host lacks) behind the scheduler and CuPy's interface: the lease path end to end.
    sim = infra.with_overrides(scheduler_port=free_port(), tensor_port=free_port(), scheduler_devices="simulated", scheduler_sim_gib=["2"],
                               tensor_backend="simulated", tensor_subject=f"tessera.test.{uuid.uuid4().hex[:8]}.tiles")
    procs = [launcher.start("scheduler", sim), launcher.start("tensor", sim)]
    try:
        await asyncio.to_thread(wait_serving, sim, procs)
        v = volume((2, 12, 10, 8))
        async with mesh_channel(sim, sim.address("tensor")) as ch:
            out = in_memory()
            result = await run_job(tensor_pb2_grpc.TensorServiceStub(ch), spec_for("bspline", zoom=(2, 2, 2), tile_shape=(1, 6, 0, 0)), v, out)
        assert result.end is not None and list(result.end.backends) == ["simulated-cuda:0"]
        assert np.array_equal(out.output, resample(np, v, Plan("bspline", np.dtype(np.float32), v.shape, (2, 24, 20, 16))))  # type: ignore[arg-type]
        async with mesh_channel(sim, sim.address("scheduler")) as ch:
            status = await scheduler_pb2_grpc.SchedulerServiceStub(ch).Status(scheduler_pb2.StatusRequest(), timeout=5)
        granted = [d for d in status.decisions if "tensor" in d and "granted" in d]
        assert len(granted) >= 1, list(status.decisions)
        assert not [lease for lease in status.leases if lease.service == "tensor"], "every tile's lease was released"
    finally:
        for p in procs:
            p.stop()
