"""Tricubic resampling kernels, written once against an array module (NumPy or CuPy).

Every function takes ``xp`` (``numpy`` or ``cupy``) and does no I/O; the CPU tests run
the same code the GPU runs. The spatial axes of a (T, Z, Y, X) array are resampled
one after another (Z, then Y, then X); T is never interpolated.

Coordinates: output index o on an axis of input length n and output length m samples
input coordinate x = o·(n−1)/(m−1) (corners aligned; x = 0 when m or n is 1), the
rule of ``scipy.ndimage.zoom(..., grid_mode=False)``.

Bit-identical tiles: every output sample is computed by the same elementwise
operations on the same values whatever tile it falls in — gathers of 4 taps summed
in a fixed order, weights computed from the global output index — and nothing
whose rounding depends on the array's shape (no matmul/BLAS, no reductions).

The B-spline prefilter (why a wide halo, not a global pass): cubic B-spline
interpolation runs on coefficients c = B⁻¹s, a global recursive filter. A global
pass would need whole lines of the input in one process; instead each tile computes
the coefficients it needs from a halo of H samples. B⁻¹'s impulse response is
−6·z1/(1−z1²)·z1^|k| with z1 = √3−2 ≈ −0.268, so truncating it at H taps per side
(H = 16 for float32, 30 for float64: |z1|^H ≈ 7e-10 and 7e-18) gives the global
coefficients to within the dtype's rounding; being a fixed FIR, a coefficient has the
same value whichever tile computes it. Boundaries mirror (d c b | a b c d | c b a),
as ``mode="mirror"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

KERNELS = ("keys", "bspline")
KEYS_A = -0.5  # Keys' cubic convolution with a = -0.5 (Catmull-Rom)
Z1 = math.sqrt(3.0) - 2.0  # the pole of the cubic B-spline's inverse filter
TAP_OFFSETS = np.arange(-1, 3, dtype=np.int64)  # taps at floor(x)-1 .. floor(x)+2
SPATIAL = (1, 2, 3)


def prefilter_halo(dtype: np.dtype[Any]) -> int:
    """Taps per side of the truncated B-spline prefilter for a dtype."""
    return 16 if np.dtype(dtype) == np.float32 else 30


def prefilter_taps(halo: int) -> np.ndarray:
    """h[0..halo] of the truncated inverse B-spline filter (symmetric: h[-j] = h[j])."""
    j = np.arange(halo + 1, dtype=np.float64)
    return -6.0 * Z1 / (1.0 - Z1 * Z1) * Z1 ** j


@dataclass(frozen=True)
class Plan:
    """What one resampling job computes: kernel, dtype and the whole input and output shapes (T, Z, Y, X)."""

    kernel: str
    dtype: np.dtype[Any]
    input_shape: tuple[int, int, int, int]
    output_shape: tuple[int, int, int, int]

    @property
    def halo(self) -> int:
        return prefilter_halo(self.dtype) if self.kernel == "bspline" else 0


def output_length(n: int, zoom: float) -> int:
    """Output length for a zoom factor: round(n·zoom), as scipy.ndimage.zoom."""
    return round(n * zoom)


def sample_coords(n: int, m: int, lo: int, hi: int) -> np.ndarray:
    """Input coordinates (float64) sampled by output indices lo..hi-1."""
    o = np.arange(lo, hi, dtype=np.float64)
    if m == 1 or n == 1:
        return np.zeros_like(o)
    return o * ((n - 1) / (m - 1))


def mirror(index: np.ndarray, n: int) -> np.ndarray:
    """Reflect indices into [0, n) about the end samples (mode "mirror"), any distance out."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    i = np.abs(index) % period
    out: np.ndarray = np.where(i >= n, period - i, i)
    return out


def keys_weights(t: np.ndarray) -> np.ndarray:
    """(4, L) Keys weights for fractional offsets t in [0, 1): taps at distances 1+t, t, 1-t, 2-t."""
    a = KEYS_A

    def inner(s: np.ndarray) -> np.ndarray:  # |s| <= 1
        w: np.ndarray = ((a + 2.0) * s - (a + 3.0)) * s * s + 1.0
        return w

    def outer(s: np.ndarray) -> np.ndarray:  # 1 < |s| < 2
        w: np.ndarray = ((a * s - 5.0 * a) * s + 8.0 * a) * s - 4.0 * a
        return w

    return np.stack([outer(1.0 + t), inner(t), inner(1.0 - t), outer(2.0 - t)])


def bspline_weights(t: np.ndarray) -> np.ndarray:
    """(4, L) cubic B-spline weights for fractional offsets t in [0, 1)."""
    u = 1.0 - t
    return np.stack([u * u * u / 6.0, 2.0 / 3.0 - t * t + t * t * t / 2.0, 2.0 / 3.0 - u * u + u * u * u / 2.0, t * t * t / 6.0])


@dataclass(frozen=True)
class AxisTaps:
    """For output indices lo..hi-1 on one axis: 4 global input indices and 4 weights each."""

    index: np.ndarray  # (4, L) int64, inside [0, n)
    weight: np.ndarray  # (4, L) float64

    @property
    def span(self) -> tuple[int, int]:
        return int(self.index.min()), int(self.index.max()) + 1


def axis_taps(kernel: str, n: int, m: int, lo: int, hi: int) -> AxisTaps:
    x = sample_coords(n, m, lo, hi)
    base = np.floor(x)
    t = x - base
    index = base.astype(np.int64)[None, :] + TAP_OFFSETS[:, None]
    if kernel == "keys":  # taps outside the input take the nearest edge value
        return AxisTaps(np.clip(index, 0, n - 1), keys_weights(t))
    return AxisTaps(mirror(index, n), bspline_weights(t))


def input_span(plan: Plan, axis: int, lo: int, hi: int) -> tuple[int, int]:
    """Input indices [start, stop) on a spatial axis that output indices lo..hi-1 read, halo included."""
    n, m = plan.input_shape[axis], plan.output_shape[axis]
    clo, chi = axis_taps(plan.kernel, n, m, lo, hi).span
    if plan.kernel == "keys" or n == 1:
        return clo, chi
    padded = mirror(np.arange(clo - plan.halo, chi + plan.halo), n)
    return int(padded.min()), int(padded.max()) + 1


def _along(axis: int, ndim: int, sl: slice) -> tuple[slice, ...]:
    return (slice(None),) * axis + (sl,) + (slice(None),) * (ndim - axis - 1)


def prefilter_axis(xp: ModuleType, a: Any, axis: int, n: int, clo: int, chi: int, start: int, halo: int) -> Any:
    """B-spline coefficients clo..chi-1 along ``axis`` from ``a``, whose index 0 on that axis is input index ``start``."""
    if n == 1:  # a constant line: its coefficient is its sample
        return a
    h = prefilter_taps(halo)
    scalar = a.dtype.type
    padded = xp.take(a, xp.asarray(mirror(np.arange(clo - halo, chi + halo), n) - start), axis=axis)
    length = chi - clo

    def shifted(j: int) -> Any:
        return padded[_along(axis, a.ndim, slice(halo + j, halo + j + length))]

    acc = None
    for j in range(halo, 0, -1):  # far taps first: the small terms are summed before the large ones
        term = shifted(j) + shifted(-j)
        term *= scalar(h[j])
        if acc is None:
            acc = term
        else:
            acc += term
    centre = shifted(0) * scalar(h[0])
    if acc is None:
        return centre
    acc += centre
    return acc


def interpolate_axis(xp: ModuleType, a: Any, axis: int, taps: AxisTaps, start: int) -> Any:
    """Resample ``a`` along ``axis`` with 4 taps per output; ``start`` is the global index of a's first sample there."""
    shape = (-1,) + (1,) * (a.ndim - axis - 1)
    out = None
    for k in range(4):
        term = xp.take(a, xp.asarray(taps.index[k] - start), axis=axis)
        term *= xp.asarray(taps.weight[k].astype(a.dtype)).reshape(shape)
        if out is None:
            out = term
        else:
            out += term
    return out


def resample_tile(xp: ModuleType, region: Any, region_offset: tuple[int, ...], plan: Plan,
                  tile_offset: tuple[int, ...], tile_shape: tuple[int, ...]) -> Any:
    """The output tile at tile_offset/tile_shape (T, Z, Y, X), from the input region that starts at region_offset.

    ``region`` must hold the tile's input span on every spatial axis (see ``input_span``) and the tile's T range.
    Called with the whole input and the whole output, this is the untiled result.
    """
    a = region.astype(plan.dtype, copy=False)
    taps = {ax: axis_taps(plan.kernel, plan.input_shape[ax], plan.output_shape[ax],
                          tile_offset[ax], tile_offset[ax] + tile_shape[ax]) for ax in SPATIAL}
    start = {ax: region_offset[ax] for ax in SPATIAL}
    if plan.kernel == "bspline":
        for ax in SPATIAL:
            clo, chi = taps[ax].span
            a = prefilter_axis(xp, a, ax, plan.input_shape[ax], clo, chi, start[ax], plan.halo)
            if plan.input_shape[ax] > 1:
                start[ax] = clo
    for ax in SPATIAL:
        a = interpolate_axis(xp, a, ax, taps[ax], start[ax])
    return a


def resample(xp: ModuleType, volume: Any, plan: Plan) -> Any:
    """The untiled result: the whole output from the whole input."""
    return resample_tile(xp, volume, (0, 0, 0, 0), plan, (0, 0, 0, 0), plan.output_shape)
