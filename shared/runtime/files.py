"""Files written whole or not at all.

An atomic write goes to a temporary file beside its target, named at random and created exclusively (``O_EXCL``,
``O_NOFOLLOW``), then renamed over the target. A predictable temporary name (``note.md.tmp``) in a shared folder lets
another local user plant a symlink there and have the writer follow it; a random one made with ``O_EXCL`` cannot be
planted in advance.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import unicodedata
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a random, exclusive temporary file and a rename; ``mode`` from the start."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL, 0600, random name
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(raw)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_sha256(path: Path, block: int = 1 << 20) -> str:
    """sha256 of a file, read a block at a time (memory stays flat whatever its size)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def slug(title: str) -> str:
    """A file name from a title: ASCII lower-case words joined by hyphens, at most 60 characters ("note" when none)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:60].rstrip("-") or "note"
