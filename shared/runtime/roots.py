"""Which files a service may read: only those under a configured root, decided in one place.

Ingest (TESSERA_INGEST_ROOTS) and tensor (TESSERA_TENSOR_ROOTS) both ask
:class:`AllowedRoots`. A path is judged by where it really is: ``~`` expanded,
``..`` and every symlink resolved (so a link inside a root that leads out of it
is refused, and one from outside into a root is allowed). Comparison is by whole
path components, so ``/data/notes-old`` is not under the root ``/data/notes``;
trailing separators do not matter; letter case matters as much as the file
system makes it (``os.path.normcase``: exact on Linux).

Inside a root, hidden files and known secret files (``.ssh``, ``.gnupg``, ``.env*``, keys and certificates,
``id_*``, service-account tokens) are refused whatever the caller named, and ``/proc``, ``/sys`` and ``/dev`` are
never a root. :meth:`AllowedRoots.open` judges what was opened, not a name checked earlier: the file is opened
without following a final symlink, and the path the kernel reports for the open descriptor is checked again.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from shared.errors import PermissionDenied
from shared.runtime.config import PROJECT_ROOT, Settings

#: File names that hold credentials, refused even inside a root (matched on every path component, lower case).
SECRET_NAMES = (".ssh", ".gnupg", ".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore", "id_rsa*",
                "id_dsa*", "id_ecdsa*", "id_ed25519*", ".netrc", ".pgpass", ".git-credentials", ".npmrc", ".pypirc",
                "credentials", "credentials.json", "secrets", "kubeconfig", "*.kubeconfig", "token")
#: Folders that are never read, whatever the roots say: the kernel's and the service-account tokens of containers.
FORBIDDEN_TREES = ("/proc", "/sys", "/dev", "/run/secrets", "/var/run/secrets")


def ingest_roots(settings: Settings) -> list[str]:
    """Where ingest may read: the data directory's notes/ (or TESSERA_NOTES_DIR) and imports/, plus TESSERA_INGEST_ROOTS."""
    notes = Path(settings.gateway.notes_dir).expanduser() if settings.gateway.notes_dir else settings.path("notes")
    return list(dict.fromkeys([str(notes.resolve()), str(settings.path("imports")), *settings.ingest.roots]))


def _under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip(os.sep) + os.sep)


def secret_reason(real: Path, root: Path | None = None) -> str | None:
    """Why a file (its real path) may never be read, or None. Hidden names count below ``root`` only (the data
    directory itself may be hidden, as ``.tessera`` is)."""
    text = str(real)
    for tree in FORBIDDEN_TREES:
        if _under(text, tree):
            return f"{tree} is never read"
    parts = real.relative_to(root).parts if root is not None and (real == root or root in real.parents) else real.parts[-1:]
    for part in parts:
        lower = part.lower()
        key_like = lower.startswith("id_") and ("." not in lower or lower.endswith(".pub"))  # id_rsa, id_work.pub
        if key_like or any(fnmatch.fnmatchcase(lower, pattern) for pattern in SECRET_NAMES):
            return f"{part!r} looks like a secret file (keys, tokens, .env files are never read)"
        if part.startswith("."):
            return f"{part!r} is hidden (hidden files are never read)"
    return None


class AllowedRoots:
    def __init__(self, roots: Iterable[str | Path], *, component: str, setting: str, base: Path = PROJECT_ROOT) -> None:
        """``roots`` relative to ``base``; ``component`` and ``setting`` name who refuses and what to change."""
        self.component, self.setting = component, setting
        self.roots = tuple(dict.fromkeys((base / Path(r).expanduser()).resolve() for r in roots))
        for root in self.roots:
            for tree in FORBIDDEN_TREES:
                if _under(str(root), tree) or str(root) == os.sep:
                    raise PermissionDenied(f"{component}: {root} may not be a root ({setting}): it is or holds {tree}")

    def __iter__(self) -> Iterator[Path]:
        return iter(self.roots)

    def __str__(self) -> str:
        return ", ".join(map(str, self.roots))

    def root_of(self, real: Path) -> Path | None:
        text = os.path.normcase(str(real))
        for root in self.roots:
            r = os.path.normcase(str(root))
            if text == r or text.startswith(r.rstrip(os.sep) + os.sep):
                return root
        return None

    def allows(self, path: str | Path) -> bool:
        return self.refusal(path) is None

    def refusal(self, path: str | Path) -> str | None:
        """Why ``path`` may not be read (a sentence), or None."""
        real = Path(path).expanduser().resolve()
        root = self.root_of(real)
        if root is None:
            return f"{path} is outside the configured roots ({self}); set {self.setting} to allow it"
        reason = secret_reason(real, root)
        return f"{path}: {reason}" if reason else None

    def check(self, path: str | Path) -> Path:
        """The real path (links resolved) when it lies under a root and is no secret; PermissionDenied with a sentence otherwise."""
        reason = self.refusal(path)
        if reason:
            raise PermissionDenied(f"{self.component}: {reason}")
        return Path(path).expanduser().resolve()

    def open(self, path: str | Path) -> BinaryIO:
        """The file opened for reading, judged by what was opened: no final symlink is followed, and the real path
        of the open descriptor (/proc/self/fd) must lie under a root, be no secret and be a regular file. A link
        swapped in after an earlier check is caught here."""
        try:
            fd = os.open(Path(path).expanduser(), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == 40:  # ELOOP: the last component is a symlink
                raise PermissionDenied(f"{self.component}: {path} is a symlink; name the file it leads to") from None
            raise
        try:
            real = Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.isdir("/proc/self/fd") else Path(path).resolve()
            reason = self.refusal(real)
            if reason:
                raise PermissionDenied(f"{self.component}: {reason}")
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PermissionDenied(f"{self.component}: {path} is not a regular file")
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_bytes(self, path: str | Path) -> bytes:
        with self.open(path) as f:
            return f.read()
