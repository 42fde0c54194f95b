"""`tessera tensor resample in.npy out.npy --zoom 2 2 2 --kernel keys`: tricubic resampling with a progress bar over tiles."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared.client import Client
from shared.client.tensor import NUMPY_DTYPES, ResampleResult, Stitcher, TensorError, check_complete, spec_for
from shared.runtime.config import Settings

console = Console(soft_wrap=not sys.stdout.isatty(), stderr=True)


def open_input(path: Path) -> Any:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise TensorError(f"tensor: {path} does not exist") from None
    except (ValueError, OSError) as exc:
        raise TensorError(f"tensor: {path} is not a readable .npy file ({exc})") from None
    if array.ndim != 4:
        raise TensorError(f"tensor: {path} holds a {array.ndim}-D array; a (T, Z, Y, X) array is needed")
    return array


async def resample_file(settings: Settings, src: Path, dst: Path, args: argparse.Namespace) -> ResampleResult:
    """Resample src into dst; dst appears only when every tile has arrived (written to dst.part first)."""
    spec = spec_for(args.kernel, zoom=args.zoom, output_shape=args.shape, tile_shape=args.tile, allow_nonfinite=args.allow_nonfinite)
    array = None
    if args.server_path:
        spec.input_path = str(src.expanduser().resolve())
    else:
        array = open_input(src)
    part = dst.with_name(dst.name + ".part")
    stitcher = Stitcher(lambda shape, dtype: np.lib.format.open_memmap(part, mode="w+", dtype=dtype, shape=shape))
    result = ResampleResult()
    try:
        async with Client(settings, transport="grpc" if args.grpc else "quic") as client:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, disable=args.quiet) as bar:
                task = bar.add_task("tiles", total=None)
                async for event in await client.resample(spec, array):
                    stitcher.feed(event, result, lambda done, total: bar.update(task, completed=done, total=total))
        check_complete(result)
        stitcher.output.flush()
        stitcher.output = None
        os.replace(part, dst)
        return result
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def cmd_resample(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(resample_file(settings, Path(args.input), Path(args.output), args))
    end = result.end
    assert end is not None and result.start is not None
    mb = end.bytes / 1e6
    secs = max(end.duration_ms / 1000, 1e-9)
    print(f"{args.output}: {tuple(end.output_shape)} {NUMPY_DTYPES[result.start.dtype]}, "
          f"{end.tiles} tiles, {mb:.1f} MB in {secs:.2f} s ({mb / secs:.1f} MB/s) on {len(end.workers)} worker(s) "
          f"[{', '.join(end.backends)}]")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    tensor = sub.add_parser("tensor", help="the tensor service").add_subparsers(dest="tensor_command", required=True)
    p = tensor.add_parser("resample", help="resample a (T, Z, Y, X) .npy in Z, Y, X with a tricubic kernel, tile by tile")
    p.add_argument("input", help="input .npy (float32 or float64, 4-D)")
    p.add_argument("output", help="output .npy (same dtype)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--zoom", type=float, nargs=3, metavar=("Z", "Y", "X"), help="zoom factor per spatial axis")
    size.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="output shape of the spatial axes")
    p.add_argument("--kernel", choices=("keys", "bspline"), default="keys",
                   help="keys: cubic convolution (a=-0.5); bspline: cubic B-spline as scipy.ndimage.zoom(order=3, mode='mirror')")
    p.add_argument("--tile", type=int, nargs=4, metavar=("T", "Z", "Y", "X"), help="output tile shape (0: whole axis); default: automatic")
    p.add_argument("--allow-nonfinite", action="store_true", help="resample input holding NaN or Inf instead of refusing it")
    p.add_argument("--server-path", action="store_true", help="let the service read the input from its path (under TESSERA_TENSOR_ROOTS)"
                                                            " instead of uploading it")
    p.add_argument("--grpc", action="store_true", help="read tiles from the gRPC stream instead of the QUIC data plane")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_resample)

