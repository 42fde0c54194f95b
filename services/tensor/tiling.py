"""Output tiles and the input regions they read: a grid over (T, Z, Y, X), no I/O.

A tile reads its input span on each spatial axis (its 4 taps per output sample, plus
the B-spline prefilter halo) and the tile's own T range; it returns only its own
output samples, so stitching tiles gives the untiled result bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from services.tensor.kernels import SPATIAL, Plan, input_span

Shape4 = tuple[int, int, int, int]


@dataclass(frozen=True)
class TileBox:
    index: int
    offset: Shape4
    shape: Shape4

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Region:
    """An input box: offset and shape on (T, Z, Y, X)."""

    offset: Shape4
    shape: Shape4

    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(o, o + s) for o, s in zip(self.offset, self.shape, strict=True))


@dataclass(frozen=True)
class TileGrid:
    """The output split into tiles of ``tile_shape`` (the last tile on an axis may be smaller)."""

    output_shape: Shape4
    tile_shape: Shape4

    def __post_init__(self) -> None:
        if any(t < 1 for t in self.tile_shape):
            raise ValueError("tensor: tile sizes must be at least 1")

    @property
    def counts(self) -> Shape4:
        return shape4(tuple(-(-n // t) for n, t in zip(self.output_shape, self.tile_shape, strict=True)))

    def __len__(self) -> int:
        return math.prod(self.counts)

    def __iter__(self) -> Iterator[TileBox]:
        counts = self.counts
        for index in range(len(self)):
            yield self.box(index, counts)

    def box(self, index: int, counts: Shape4 | None = None) -> TileBox:
        counts = counts or self.counts
        pos: list[int] = []
        rest = index
        for c in reversed(counts):
            pos.append(rest % c)
            rest //= c
        pos.reverse()
        offset = tuple(p * t for p, t in zip(pos, self.tile_shape, strict=True))
        shape = tuple(min(t, n - o) for t, n, o in zip(self.tile_shape, self.output_shape, offset, strict=True))
        return TileBox(index, shape4(offset), shape4(shape))


def input_region(plan: Plan, box: TileBox) -> Region:
    """The input box a tile reads: its T range and, on each spatial axis, its taps' span with the halo."""
    offset, shape = [box.offset[0]], [box.shape[0]]
    for ax in SPATIAL:
        start, stop = input_span(plan, ax, box.offset[ax], box.offset[ax] + box.shape[ax])
        offset.append(start)
        shape.append(stop - start)
    return Region(shape4(tuple(offset)), shape4(tuple(shape)))


def resolve_tile_shape(requested: tuple[int, ...], output_shape: Shape4) -> Shape4:
    """A requested tile shape with 0 meaning the whole axis, clamped to the output."""
    return shape4(tuple(n if t == 0 else min(t, n) for t, n in zip(requested, output_shape, strict=True)))


def auto_tile_shape(plan: Plan, target_bytes: int, limit_bytes: int) -> Shape4:
    """Tiles of one time step whose output stays near target_bytes and whose input region stays within
    2 × target_bytes (downsampling reads more than it writes) and limit_bytes (one bus message).

    Splits Z first, then Y, then X, so a tile stays a stack of whole rows (contiguous in memory) while it can.
    """
    region_bytes = min(limit_bytes, 2 * target_bytes)
    item = plan.dtype.itemsize
    tile = [1, *plan.output_shape[1:]]
    for ax in SPATIAL:
        inner = item * math.prod(tile[ax + 1:]) * tile[0]
        if inner * tile[ax] <= target_bytes:
            break
        tile[ax] = max(1, target_bytes // inner)
    while largest_region_bytes(plan, shape4(tuple(tile))) > region_bytes and any(t > 1 for t in tile[1:]):
        ax = max(SPATIAL, key=lambda a: tile[a])
        tile[ax] = max(1, tile[ax] // 2)
    return shape4(tuple(tile))


def largest_region_bytes(plan: Plan, tile_shape: Shape4) -> int:
    """Bytes of the largest input region any tile of this shape reads (spans depend on each axis alone)."""
    size = min(tile_shape[0], plan.output_shape[0])
    for ax in SPATIAL:
        m, t = plan.output_shape[ax], tile_shape[ax]
        size *= max(stop - start for lo in range(0, m, t) for start, stop in [input_span(plan, ax, lo, min(lo + t, m))])
    return size * plan.dtype.itemsize


def shape4(shape: tuple[int, ...]) -> Shape4:
    """A (T, Z, Y, X) shape, checked to have four axes."""
    if len(shape) != 4:
        raise ValueError(f"a (T, Z, Y, X) shape has 4 axes, not {len(shape)}")
    return shape[0], shape[1], shape[2], shape[3]
