"""Kernels against the plain float64 references, tiled against untiled (bit for bit), on fresh random inputs."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from gpu import cupy_or_skip
from seeds import SEED
from tensor_reference import bspline_reference, keys_reference, rel_err

from services.tensor.kernels import Plan, output_length, resample, resample_tile
from services.tensor.tiling import TileGrid, auto_tile_shape, input_region, largest_region_bytes

RNG = np.random.default_rng(SEED)  # fresh inputs every run (TEST_SEED repeats one)

# (input shape, zoom or None, explicit output (Z, Y, X) or None): odd sizes, 1-sample axes, up and down, mixed.
CASES = [
    ((2, 9, 13, 7), (2.0, 2.0, 2.0), None),
    ((1, 1, 5, 6), (3.0, 0.5, 1.7), None),
    ((3, 20, 11, 3), (0.4, 1.0, 2.5), None),
    ((1, 7, 1, 9), None, (4, 3, 17)),
    ((2, 6, 10, 1), None, (1, 23, 1)),
    ((1, 17, 4, 12), (0.3, 3.0, 0.75), None),
]
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def volume(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return (RNG.standard_normal(shape) + RNG.uniform(-2, 2)).astype(dtype)


def plan_for(kernel: str, shape: tuple[int, int, int, int], dtype: Any, zoom: Any, out: Any) -> Plan:
    zyx = out or tuple(output_length(n, z) for n, z in zip(shape[1:], zoom, strict=True))
    return Plan(kernel, np.dtype(dtype), shape, (shape[0], *zyx))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "zoom", "out"), CASES)
def test_keys_matches_the_plain_reference(shape: Any, zoom: Any, out: Any, dtype: Any) -> None:
    v = volume(shape, dtype)
    plan = plan_for("keys", shape, dtype, zoom, out)
    got = resample(np, v, plan)
    assert got.dtype == dtype and got.shape == plan.output_shape
    assert rel_err(got, keys_reference(v, plan.output_shape[1:])) < TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "zoom", "out"), CASES)
def test_bspline_matches_scipy_zoom_mirror(shape: Any, zoom: Any, out: Any, dtype: Any) -> None:
    v = volume(shape, dtype)
    plan = plan_for("bspline", shape, dtype, zoom, out)
    got = resample(np, v, plan)
    want = bspline_reference(v, zoom, plan.output_shape[1:])
    assert got.dtype == dtype and got.shape == want.shape == plan.output_shape
    assert rel_err(got, want) < TOL[dtype]


def test_keys_interpolates_cubics_exactly_and_hits_the_samples() -> None:
    # Catmull-Rom reproduces quadratics inside the volume and passes through the samples at integer coordinates.
    z = np.arange(9, dtype=np.float64)
    v = np.broadcast_to((0.5 * z * z - 3 * z + 2)[None, :, None, None], (1, 9, 2, 2)).copy()
    got = resample(np, v, Plan("keys", np.dtype(np.float64), (1, 9, 2, 2), (1, 17, 2, 2)))
    x = np.arange(17) * 0.5
    inner = (x >= 1) & (x <= 7)
    assert np.allclose(got[0, inner, 0, 0], (0.5 * x * x - 3 * x + 2)[inner], atol=1e-12)
    assert np.array_equal(got[0, ::2], v[0])


def stitch(v: np.ndarray, plan: Plan, tile: tuple[int, int, int, int]) -> np.ndarray:
    out = np.full(plan.output_shape, np.nan, dtype=plan.dtype)
    grid = TileGrid(plan.output_shape, tile)
    for box in grid:
        region = input_region(plan, box)
        part = resample_tile(np, np.ascontiguousarray(v[region.slices()]), region.offset, plan, box.offset, box.shape)
        assert part.shape == box.shape
        out[tuple(slice(o, o + s) for o, s in zip(box.offset, box.shape, strict=True))] = part
    return out


@pytest.mark.parametrize("kernel", ["keys", "bspline"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiles_stitch_to_the_untiled_result_bit_for_bit(kernel: str, dtype: Any) -> None:
    for shape, zoom, out in CASES:
        v = volume(shape, dtype)
        plan = plan_for(kernel, shape, dtype, zoom, out)
        whole = resample(np, v, plan)
        # tile sizes that don't divide the output, single samples, and whole axes
        sizes = [tuple(int(RNG.integers(max(1, n // 4), n + 1)) for n in plan.output_shape) for _ in range(3)]
        singles = [(1, 1, 1, 1)] if np.prod(plan.output_shape) <= 1500 else [(1, 1, 1, 2)]  # a tile per sample: slow on big outputs
        for tile in [*singles, (1, 3, 2, 5), *sizes]:
            tiled = stitch(v, plan, tile)  # type: ignore[arg-type]
            assert np.array_equal(tiled, whole), (kernel, shape, tile)


def test_bspline_tiles_in_a_large_volume_need_only_their_halo() -> None:
    # Far from the edges a tile reads its taps plus the prefilter halo, not whole lines.
    plan = Plan("bspline", np.dtype(np.float32), (1, 200, 8, 8), (1, 400, 8, 8))
    box = TileGrid(plan.output_shape, (1, 20, 8, 8)).box(10)
    region = input_region(plan, box)
    assert region.shape[1] <= 10 + 3 + 2 * plan.halo + 1 < 200
    v = volume(plan.input_shape, np.float32)
    part = resample_tile(np, v[region.slices()], region.offset, plan, box.offset, box.shape)
    assert np.array_equal(part, resample(np, v, plan)[:, 200:220])


def test_grid_covers_every_output_sample_once() -> None:
    for output, tile in [((3, 10, 7, 5), (2, 3, 7, 2)), ((1, 1, 1, 1), (1, 1, 1, 1)), ((2, 5, 5, 5), (5, 5, 5, 5))]:
        grid = TileGrid(output, tile)  # type: ignore[arg-type]
        count = np.zeros(output, dtype=int)
        boxes = list(grid)
        assert len(boxes) == len(grid) and [b.index for b in boxes] == list(range(len(grid)))
        for b in boxes:
            count[tuple(slice(o, o + s) for o, s in zip(b.offset, b.shape, strict=True))] += 1
        assert (count == 1).all()


def test_auto_tiles_respect_the_target_and_the_message_limit() -> None:
    plan = Plan("bspline", np.dtype(np.float32), (8, 64, 128, 128), (8, 128, 256, 256))
    tile = auto_tile_shape(plan, 4 << 20, 8 << 20)
    assert tile[0] == 1 and tile[2:] == (256, 256) and np.prod(tile) * 4 <= 4 << 20
    assert largest_region_bytes(plan, tile) <= 8 << 20
    small = auto_tile_shape(plan, 64 << 10, 256 << 10)
    assert np.prod(small) * 4 <= 64 << 10 and largest_region_bytes(plan, small) <= 256 << 10
    for a, b in itertools.pairwise([small, tile]):
        assert np.prod(a) < np.prod(b)


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["keys", "bspline"])
def test_cupy_matches_numpy_and_tiles_stitch_on_the_gpu(kernel: str) -> None:
    cupy = cupy_or_skip()  # CI has no GPU; the CPU tests run the same kernel code

    v = volume((2, 21, 33, 17), np.float32)
    plan = plan_for(kernel, v.shape, np.float32, (2.0, 1.5, 0.7), None)  # type: ignore[arg-type]
    gpu = cupy.asnumpy(resample(cupy, cupy.asarray(v), plan))
    assert rel_err(gpu, resample(np, v.astype(np.float64), Plan(kernel, np.dtype(np.float64), plan.input_shape,
                                                                     plan.output_shape))) < 1e-5
    grid = TileGrid(plan.output_shape, (1, 7, 9, 5))
    tiled = np.empty(plan.output_shape, np.float32)
    for box in grid:
        region = input_region(plan, box)
        part = resample_tile(cupy, cupy.asarray(v[region.slices()]), region.offset, plan, box.offset, box.shape)
        tiled[tuple(slice(o, o + s) for o, s in zip(box.offset, box.shape, strict=True))] = cupy.asnumpy(part)
    assert np.array_equal(tiled, gpu)
