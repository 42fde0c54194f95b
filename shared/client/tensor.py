"""Client side of the tensor service: upload (or name) a .npy, read tiles, stitch them into an array.

Used by ``tessera tensor resample`` and by anyone calling the service from Python.
Tiles arrive over the QUIC data plane (StartResample + ticket) or the gRPC stream
(Resample); both carry the same frames: start, tiles in any order, end.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.client._rpc import open_stream, rpc_errors
from shared.client.events import Finished, Started, TensorEvent, TileReady, tensor_event
from shared.errors import InvalidArgument, Unavailable
from shared.gen.tessera.v1 import tensor_pb2, tensor_pb2_grpc
from shared.quic import QuicClient
from shared.runtime.channels import call_metadata

UPLOAD_CHUNK = 1024 * 1024
KERNELS = {"keys": tensor_pb2.KERNEL_KEYS, "bspline": tensor_pb2.KERNEL_BSPLINE}
DTYPES: dict[np.dtype[Any], tensor_pb2.DType] = {np.dtype(np.float32): tensor_pb2.DTYPE_FLOAT32, np.dtype(np.float64): tensor_pb2.DTYPE_FLOAT64}
NUMPY_DTYPES: dict[int, np.dtype[Any]] = {int(v): k for k, v in DTYPES.items()}


class TensorError(InvalidArgument):
    """A local input the client cannot send (a missing or malformed .npy); the service's own refusals are StatusErrors."""


@dataclass
class ResampleResult:
    """What a job delivered: its Started and Finished events, the tile count, and the raw frames when asked."""

    start: Started | None = None
    end: Finished | None = None
    tiles: int = 0
    frames: list[tensor_pb2.TensorFrame] = field(default_factory=list)  # only with keep_frames


def spec_for(kernel: str, *, zoom: Sequence[float] | None = None, output_shape: Sequence[int] | None = None,
             tile_shape: Sequence[int] | None = None, allow_nonfinite: bool = False) -> tensor_pb2.ResampleSpec:
    if kernel not in KERNELS:
        raise TensorError(f"tensor: unknown kernel {kernel!r}; use keys or bspline")
    return tensor_pb2.ResampleSpec(kernel=KERNELS[kernel], zoom=list(zoom or []), output_shape=list(output_shape or []),
                                   tile_shape=list(tile_shape or []), allow_nonfinite=allow_nonfinite)


def upload_chunks(array: Any, chunk: int = UPLOAD_CHUNK) -> Iterator[bytes]:
    """C-order bytes of a (possibly memory-mapped, possibly Fortran-ordered) array, a slab at a time."""
    if array.ndim == 0 or array.size == 0:
        return
    rows = max(1, chunk // max(1, math.prod(array.shape[1:]) * array.dtype.itemsize))
    for start in range(0, array.shape[0], rows):
        data = np.ascontiguousarray(array[start:start + rows], dtype=array.dtype.newbyteorder("=")).tobytes()
        for i in range(0, len(data), chunk):
            yield data[i:i + chunk]


async def requests_for(spec: tensor_pb2.ResampleSpec, array: Any | None) -> AsyncIterator[tensor_pb2.ResampleRequest]:
    if array is not None:  # on a copy: the caller's spec can be sent again
        spec = tensor_pb2.ResampleSpec.FromString(spec.SerializeToString())
        spec.input_shape[:] = list(array.shape)
        spec.dtype = DTYPES.get(np.dtype(array.dtype).newbyteorder("="), tensor_pb2.DTYPE_UNSPECIFIED)
    yield tensor_pb2.ResampleRequest(spec=spec)
    if array is not None:
        for part in upload_chunks(array):
            yield tensor_pb2.ResampleRequest(data=part)


class Stitcher:
    """Writes tiles into an output array (an ndarray or a .npy memory map) as they arrive."""

    def __init__(self, make_output: Callable[[tuple[int, ...], np.dtype[Any]], Any]) -> None:
        self.make_output = make_output
        self.output: Any = None
        self.seen: set[int] = set()

    def start(self, start: Started) -> None:
        self.output = self.make_output(tuple(start.output_shape), NUMPY_DTYPES[start.dtype])

    def tile(self, tile: TileReady) -> None:
        if self.output is None:
            raise Unavailable("tensor: a tile arrived before the start frame")
        if tile.index in self.seen:
            raise Unavailable(f"tensor: tile {tile.index} arrived twice")
        self.seen.add(tile.index)
        slices = tuple(slice(o, o + s) for o, s in zip(tile.offset, tile.shape, strict=True))
        self.output[slices] = np.frombuffer(tile.data, dtype=NUMPY_DTYPES[tile.dtype]).reshape(tuple(tile.shape))

    def feed(self, event: TensorEvent, result: ResampleResult, on_tile: Callable[[int, int], None] | None = None) -> None:
        """Apply one event of a job to the output and to ``result``."""
        if isinstance(event, Started):
            result.start = event
            self.start(event)
        elif isinstance(event, TileReady):
            self.tile(event)
            result.tiles += 1
            if on_tile and result.start is not None:
                on_tile(result.tiles, result.start.tiles)
        else:
            result.end = event


def check_complete(result: ResampleResult) -> ResampleResult:
    if result.end is None or result.start is None:
        raise Unavailable("tensor: the stream ended before the end frame")
    if result.tiles != result.start.tiles:
        raise Unavailable(f"tensor: {result.tiles} of {result.start.tiles} tiles arrived")
    return result


async def resample(stub: tensor_pb2_grpc.TensorServiceStub, spec: tensor_pb2.ResampleSpec, array: Any | None,
                   stitcher: Stitcher, *, quic: QuicClient | None = None, timeout: float = 3600.0,
                   on_tile: Callable[[int, int], None] | None = None, keep_frames: bool = False) -> ResampleResult:
    """One job on a stub: over QUIC when ``quic`` is given, else the gRPC stream (``Client.resample`` is the same with
    the transport chosen for you). A refusal or a failed tile raises its StatusError. The key comes with the stub's
    channel (shared.runtime.channels.KeyedChannel)."""
    result = ResampleResult()
    frames, _ = await open_stream("tensor", tensor_pb2.TensorFrame, quic,
                                  lambda: stub.StartResample(requests_for(spec, array), timeout=timeout, metadata=call_metadata()),
                                  lambda: stub.Resample(requests_for(spec, array), timeout=timeout, metadata=call_metadata()), admission=False)
    try:
        with rpc_errors("tensor"):
            async for frame in frames:
                if keep_frames:
                    result.frames.append(frame)
                stitcher.feed(tensor_event(frame), result, on_tile)
    finally:
        frames.cancel()
    return check_complete(result)
