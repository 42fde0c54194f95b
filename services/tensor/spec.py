"""What a Resample request asks for, checked: kernel, dtype, shapes, zoom, tiles. No I/O.

Every refusal is a :class:`SpecError` whose message is one sentence saying what was
wrong; the server turns it into INVALID_ARGUMENT (or the code it carries).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.tensor.kernels import Plan, output_length
from services.tensor.tiling import Shape4
from shared.errors import InvalidArgument
from shared.gen.tessera.v1 import tensor_pb2

KERNEL_NAMES = {tensor_pb2.KERNEL_KEYS: "keys", tensor_pb2.KERNEL_BSPLINE: "bspline"}
DTYPES: dict[tensor_pb2.DType, np.dtype[Any]] = {tensor_pb2.DTYPE_FLOAT32: np.dtype(np.float32), tensor_pb2.DTYPE_FLOAT64: np.dtype(np.float64)}
DTYPE_CODES = {v: k for k, v in DTYPES.items()}
MAX_ELEMENTS = 1 << 40  # no axis product beyond this: a typo, not a tensor


class SpecError(InvalidArgument):
    """A spec or input the service cannot resample; the message is one sentence saying what was wrong."""


@dataclass(frozen=True)
class ResampleRequest:
    """A checked ResampleSpec; dtype and input_shape may still come from an input file."""

    kernel: str
    dtype: np.dtype[Any] | None
    input_shape: Shape4 | None
    output_zyx: tuple[int, int, int] | None
    zoom: tuple[float, float, float] | None
    tile_shape: Shape4 | None
    input_path: str
    allow_nonfinite: bool

    @property
    def upload_bytes(self) -> int:
        """Bytes an upload must carry: input_shape × dtype (0 when the spec lacks either)."""
        if self.input_shape is None or self.dtype is None:
            return 0
        return math.prod(self.input_shape) * self.dtype.itemsize


def dtype_code(dtype: np.dtype[Any]) -> tensor_pb2.DType:
    return DTYPE_CODES[np.dtype(dtype)]


def parse_spec(spec: tensor_pb2.ResampleSpec) -> ResampleRequest:
    """Check a spec on its own; without input_path the input is uploaded after it."""
    kernel = KERNEL_NAMES.get(spec.kernel)
    if kernel is None:
        raise SpecError("tensor: kernel is required: KERNEL_KEYS (cubic convolution) or KERNEL_BSPLINE (cubic B-spline)")
    dtype = DTYPES.get(spec.dtype)
    if spec.dtype and dtype is None:
        raise SpecError(f"tensor: dtype {spec.dtype} is not supported; use DTYPE_FLOAT32 or DTYPE_FLOAT64")
    input_shape = _shape4("input_shape", spec.input_shape, minimum=1) if spec.input_shape else None
    if not spec.input_path and (input_shape is None or dtype is None):
        raise SpecError("tensor: uploaded data needs input_shape (T, Z, Y, X) and dtype in the spec")
    if bool(spec.zoom) == bool(spec.output_shape):
        raise SpecError("tensor: give exactly one of zoom (3 factors) or output_shape (Z, Y, X)")
    zoom: tuple[float, float, float] | None = None
    output: tuple[int, int, int] | None = None
    if spec.zoom:
        if len(spec.zoom) != 3:
            raise SpecError(f"tensor: zoom needs 3 factors (Z, Y, X), got {len(spec.zoom)}")
        if not all(math.isfinite(z) and z > 0 for z in spec.zoom):
            raise SpecError(f"tensor: zoom factors must be finite and above 0, got {list(spec.zoom)}")
        zoom = (spec.zoom[0], spec.zoom[1], spec.zoom[2])
    else:
        if len(spec.output_shape) != 3:
            raise SpecError(f"tensor: output_shape needs 3 lengths (Z, Y, X), got {len(spec.output_shape)}")
        if not all(n >= 1 for n in spec.output_shape):
            raise SpecError(f"tensor: output_shape lengths must be at least 1, got {list(spec.output_shape)}")
        output = (int(spec.output_shape[0]), int(spec.output_shape[1]), int(spec.output_shape[2]))
    tile = _shape4("tile_shape", spec.tile_shape, minimum=0) if spec.tile_shape else None
    return ResampleRequest(kernel, dtype, input_shape, output, zoom, tile, spec.input_path, spec.allow_nonfinite)


def shape4(values: Sequence[int]) -> Shape4:
    """Four lengths (T, Z, Y, X) as the tuple the kernels take."""
    t, z, y, x = (int(v) for v in values)
    return (t, z, y, x)


def _shape4(name: str, values: Any, *, minimum: int) -> Shape4:
    if len(values) != 4:
        raise SpecError(f"tensor: {name} needs 4 lengths (T, Z, Y, X), got {len(values)}")
    if any(v < minimum for v in values):
        raise SpecError(f"tensor: {name} lengths must be at least {minimum}, got {list(values)}")
    if math.prod(values) > MAX_ELEMENTS:
        raise SpecError(f"tensor: {name} {list(values)} has more than 2^40 elements")
    return (int(values[0]), int(values[1]), int(values[2]), int(values[3]))


def make_plan(req: ResampleRequest, input_shape: Shape4, dtype: np.dtype[Any]) -> Plan:
    """The job's plan once the input's shape and dtype are known (from the spec or the file)."""
    if np.dtype(dtype) not in DTYPE_CODES:
        raise SpecError(f"tensor: input dtype {np.dtype(dtype)} is not supported; use float32 or float64")
    if req.dtype is not None and np.dtype(dtype) != req.dtype:
        raise SpecError(f"tensor: the spec says dtype {req.dtype} but the input is {np.dtype(dtype)}")
    if req.input_shape is not None and tuple(input_shape) != req.input_shape:
        raise SpecError(f"tensor: the spec says input_shape {list(req.input_shape)} but the input is {list(input_shape)}")
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise SpecError(f"tensor: the input must be a 4-D (T, Z, Y, X) array with no empty axis, got shape {list(input_shape)}")
    if req.zoom is not None:
        zyx = tuple(output_length(n, z) for n, z in zip(input_shape[1:], req.zoom, strict=True))
        for axis, (n, z, m) in enumerate(zip(input_shape[1:], req.zoom, zyx, strict=True)):
            if m < 1:
                raise SpecError(f"tensor: zoom {z} on axis {'ZYX'[axis]} ({n} samples) leaves no output sample")
    else:
        assert req.output_zyx is not None
        zyx = req.output_zyx
    output = (input_shape[0], *zyx)
    if math.prod(output) > MAX_ELEMENTS:
        raise SpecError(f"tensor: the output {list(output)} has more than 2^40 elements")
    return Plan(req.kernel, np.dtype(dtype), input_shape, shape4(output))
