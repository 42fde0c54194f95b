"""Which files a service may read: only those under a configured root, decided in one place.

Ingest (TESSERA_INGEST_ROOTS) and tensor (TESSERA_TENSOR_ROOTS) both ask
:class:`AllowedRoots`. A path is judged by where it really is: ``~`` expanded,
``..`` and every symlink resolved (so a link inside a root that leads out of it
is refused, and one from outside into a root is allowed). Comparison is by whole
path components, so ``/data/notes-old`` is not under the root ``/data/notes``;
trailing separators do not matter; letter case matters as much as the file
system makes it (``os.path.normcase``: exact on Linux).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.errors import PermissionDenied
from shared.runtime.config import PROJECT_ROOT


class AllowedRoots:
    def __init__(self, roots: Iterable[str | Path], *, component: str, setting: str, base: Path = PROJECT_ROOT) -> None:
        """``roots`` relative to ``base``; ``component`` and ``setting`` name who refuses and what to change."""
        self.component, self.setting = component, setting
        self.roots = tuple(dict.fromkeys((base / Path(r).expanduser()).resolve() for r in roots))

    def __iter__(self) -> Iterator[Path]:
        return iter(self.roots)

    def __str__(self) -> str:
        return ", ".join(map(str, self.roots))

    def allows(self, path: str | Path) -> bool:
        real = os.path.normcase(str(Path(path).expanduser().resolve()))
        for root in self.roots:
            r = os.path.normcase(str(root))
            if real == r or real.startswith(r.rstrip(os.sep) + os.sep):
                return True
        return False

    def check(self, path: str | Path) -> Path:
        """The real path (links resolved) when it lies under a root; PermissionDenied with a sentence otherwise."""
        if not self.allows(path):
            raise PermissionDenied(f"{self.component}: {path} is outside the configured roots ({self}); "
                                   f"set {self.setting} to allow it")
        return Path(path).expanduser().resolve()
