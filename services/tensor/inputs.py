"""Where a job's input lives while it runs: an uploaded tensor spooled to disk, or a .npy under the roots.

Either way the job reads it through a read-only memory map, so a process never needs
the whole input in memory: a tile's region is read when the tile is sent.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from services.tensor.spec import DTYPE_CODES, SpecError
from shared.errors import NotFound
from shared.runtime.roots import AllowedRoots

SCAN_BYTES = 16 * 1024 * 1024


class TensorInput:
    """A (T, Z, Y, X) .npy read a region at a time; an uploaded one is deleted on close().

    Every read maps the file afresh and unmaps it after copying, so the pages a job has
    read do not accumulate in this process (a long-lived map would keep them resident).
    """

    def __init__(self, path: Path, *, temporary: bool) -> None:
        self.path, self.temporary = path, temporary
        with self._mapped() as array:
            self.shape: tuple[int, ...] = tuple(int(n) for n in array.shape)
            self.stored_dtype = np.dtype(array.dtype)
            self.nbytes = int(array.nbytes)
            self.fortran = bool(array.flags.f_contiguous and not array.flags.c_contiguous)

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[Any]:
        array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        try:
            yield array
        finally:
            mm = getattr(array, "_mmap", None)
            del array
            if mm is not None:
                mm.close()

    @property
    def dtype(self) -> np.dtype[Any]:
        native: np.dtype[Any] = self.stored_dtype.newbyteorder("=")  # read() hands out native byte order
        return native

    def read(self, slices: tuple[slice, ...]) -> bytes:
        with self._mapped() as array:
            return np.ascontiguousarray(array[slices], dtype=self.dtype).tobytes()

    def first_nonfinite(self) -> int | None:
        """Flat index of the first NaN/Inf, scanning in bounded chunks; None when all are finite."""
        step = max(1, SCAN_BYTES // self.dtype.itemsize)
        total = math.prod(self.shape)
        for start in range(0, total, step):
            with self._mapped() as array:
                flat = array.reshape(-1, order="A")
                bad = np.flatnonzero(~np.isfinite(flat[start:start + step]))
            if bad.size:
                index = start + int(bad[0])
                if self.fortran:  # the scan ran in storage order; report the C-order index
                    return int(np.ravel_multi_index(np.unravel_index(index, self.shape, order="F"), self.shape))
                return index
        return None

    def close(self) -> None:
        if self.temporary:
            self.path.unlink(missing_ok=True)


def open_npy(path_text: str, roots: AllowedRoots, max_bytes: int) -> TensorInput:
    """A .npy file under one of the roots, checked: NOT_FOUND, PERMISSION_DENIED or INVALID_ARGUMENT otherwise."""
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        raise SpecError(f"tensor: input_path {path_text!r} must be an absolute path")
    real = roots.check(path)
    if not real.is_file():
        raise NotFound(f"tensor: {path} does not exist")
    if real.suffix.lower() != ".npy":
        raise SpecError(f"tensor: {path} is not a .npy file")
    try:
        source = TensorInput(real, temporary=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SpecError(f"tensor: {path} is not a readable .npy file ({exc})") from None
    if len(source.shape) != 4:
        raise SpecError(f"tensor: {path} holds a {len(source.shape)}-D array; a (T, Z, Y, X) array is needed")
    if source.dtype not in DTYPE_CODES:
        raise SpecError(f"tensor: {path} holds {source.dtype} values; float32 or float64 is needed")
    if source.nbytes > max_bytes:
        raise SpecError(f"tensor: {path} is {source.nbytes} bytes, over TESSERA_TENSOR_MAX_INPUT_BYTES ({max_bytes})")
    return source


class Spool:
    """An upload written to a .npy file as it arrives, checked for NaN/Inf on the way."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any], *, check_finite: bool) -> None:
        self.path, self.shape, self.dtype, self.check_finite = path, shape, np.dtype(dtype), check_finite
        self.expected = math.prod(shape) * self.dtype.itemsize
        self.received = 0
        self.nonfinite_at: int | None = None
        self._carry = b""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO | None = path.open("wb")
        np.lib.format.write_array_header_2_0(self._file, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                          "fortran_order": False, "shape": tuple(shape)})

    def write(self, data: bytes) -> str:
        """Append a chunk; returns a problem sentence (too many bytes) or ""."""
        if self.received + len(data) > self.expected:
            return f"tensor: the upload is longer than input_shape × dtype ({self.expected} bytes)"
        assert self._file is not None
        self._file.write(data)
        if self.check_finite and self.nonfinite_at is None:
            buf = self._carry + data
            usable = len(buf) - len(buf) % self.dtype.itemsize
            values = np.frombuffer(buf[:usable], dtype=self.dtype)
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                self.nonfinite_at = (self.received - len(self._carry)) // self.dtype.itemsize + int(bad[0])
            self._carry = buf[usable:]
        self.received += len(data)
        return ""

    def finish(self) -> TensorInput:
        self._close_file()
        return TensorInput(self.path, temporary=True)

    def discard(self) -> None:
        self._close_file()
        self.path.unlink(missing_ok=True)

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def nonfinite_message(index: int, shape: tuple[int, ...]) -> str:
    where = tuple(int(i) for i in np.unravel_index(index, shape))
    return (f"tensor: the input holds NaN or Inf (first at {list(where)}); set allow_nonfinite to resample it anyway")
