"""The files of a folder that IngestPath may read (the roots themselves are shared.runtime.roots.AllowedRoots)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from pathlib import Path

from services.ingest.parse import SUPPORTED
from shared.runtime.roots import AllowedRoots


def walk(root: Path, roots: AllowedRoots, include: list[str]) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for each ingestible file, or (file, reason) for one that must be refused; sorted, no hidden files."""
    if root.is_file():
        yield root, roots.refusal(root)
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.is_dir():
            continue
        if include and not any(fnmatch.fnmatch(str(rel), pat) or fnmatch.fnmatch(path.name, pat) for pat in include):
            continue
        if not include and path.suffix.lower() not in SUPPORTED:
            continue
        refusal = roots.refusal(path)
        if refusal:
            yield path, ("symlink leads outside the configured roots" if roots.root_of(path.resolve()) is None else refusal)
            continue
        yield path, None
