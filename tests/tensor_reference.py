"""Plain float64 references for the tensor kernels, written from the definitions (loops, dense matrices).

Keys: cubic convolution with a = -0.5; output o samples x = o·(n−1)/(m−1); taps outside
the input take the nearest edge value. B-spline: scipy.ndimage.zoom(order=3, mode="mirror",
grid_mode=False) per time step, the definition the issue gives.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.ndimage


def keys_weight(s: float, a: float = -0.5) -> float:
    s = abs(s)
    if s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if s < 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


def keys_matrix(n: int, m: int) -> np.ndarray:
    """(m, n): row o holds the weights output o gives each input sample."""
    matrix = np.zeros((m, n))
    for o in range(m):
        x = 0.0 if m == 1 or n == 1 else o * (n - 1) / (m - 1)
        base = math.floor(x)
        for i in range(base - 1, base + 3):
            matrix[o, min(max(i, 0), n - 1)] += keys_weight(x - i)
    return matrix


def keys_reference(volume: np.ndarray, out_zyx: tuple[int, int, int]) -> np.ndarray:
    out = volume.astype(np.float64)
    for axis, m in zip((1, 2, 3), out_zyx, strict=True):
        out = np.moveaxis(np.tensordot(keys_matrix(out.shape[axis], m), out, axes=([1], [axis])), 0, axis)
    return out


def bspline_reference(volume: np.ndarray, zoom: tuple[float, float, float] | None = None,
                      out_zyx: tuple[int, int, int] | None = None) -> np.ndarray:
    if zoom is None:
        assert out_zyx is not None
        # scipy derives the output shape from the zoom; a zoom of exactly m/n gives round(n·m/n) = m
        zoom = tuple(m / n for m, n in zip(out_zyx, volume.shape[1:], strict=True))  # type: ignore[assignment]
    return np.stack([scipy.ndimage.zoom(volume[t].astype(np.float64), zoom, order=3, mode="mirror", grid_mode=False)
                     for t in range(volume.shape[0])])


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max |got − want| / max |want| (normwise: random data crosses zero, so elementwise ratios are meaningless)."""
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())
