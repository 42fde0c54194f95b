"""Which paths IngestPath may read: only those under a configured root, symlinks resolved."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

from services.ingest.parse import SUPPORTED


class OutsideRoots(PermissionError):
    """The path, or where a symlink in it leads, is outside every configured root."""


def resolve_roots(roots: list[str], base: Path) -> list[Path]:
    return [(base / Path(r).expanduser()).resolve() for r in roots]


def check_under_roots(path: Path, roots: list[Path]) -> Path:
    real = path.resolve()
    if not any(real == r or real.is_relative_to(r) for r in roots):
        raise OutsideRoots(f"ingest: {path} is outside the configured roots ({', '.join(map(str, roots))}); "
                           "set TESSERA_INGEST_ROOTS to allow it")
    return real


def walk(root: Path, roots: list[Path], include: list[str]) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for each ingestible file, or (file, reason) for one that must be refused; sorted, no hidden files."""
    if root.is_file():
        yield root, None
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.is_dir():
            continue
        if include and not any(fnmatch.fnmatch(str(rel), pat) or fnmatch.fnmatch(path.name, pat) for pat in include):
            continue
        if not include and path.suffix.lower() not in SUPPORTED:
            continue
        try:
            check_under_roots(path, roots)
        except OutsideRoots:
            yield path, "symlink leads outside the configured roots"
            continue
        yield path, None
