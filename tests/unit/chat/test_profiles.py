"""Model profiles: parts joined in order and verified by size and sha256; a mismatch names the package."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.chat.profiles import PROFILES, ModelFileError, join_parts, model_path, profile, verified
from shared.errors import ConfigError


def parts(tmp_path: Path, blobs: list[bytes]) -> list[tuple[str, Path]]:
    out = []
    for i, blob in enumerate(blobs, 1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(blob)
        out.append((f"pkg-part{i}", p))
    return out


def test_parts_join_in_order_and_verify(tmp_path: Path) -> None:
    blobs = [b"alpha" * 1000, b"beta" * 999, b"gamma"]
    whole = b"".join(blobs)
    target = tmp_path / "models" / "m.gguf"
    got = join_parts(parts(tmp_path, blobs), target, len(whole), hashlib.sha256(whole).hexdigest())
    assert got == target and target.read_bytes() == whole
    assert verified(target, len(whole), hashlib.sha256(whole).hexdigest())
    assert not list(target.parent.glob(".*.part"))  # nothing left aside


def test_a_wrong_hash_is_refused_and_nothing_is_left(tmp_path: Path) -> None:
    blobs = [b"a" * 10, b"b" * 10]
    target = tmp_path / "m.gguf"
    with pytest.raises(ModelFileError, match=r"not the official|sha256"):
        join_parts(parts(tmp_path, blobs), target, 20, "0" * 64)
    assert not target.exists() and not list(tmp_path.glob(".*.part"))


def test_a_short_part_names_a_package(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="pkg-part2"):
        join_parts(parts(tmp_path, [b"a" * 10, b"b" * 5]), tmp_path / "m.gguf", 20, "0" * 64)


def test_a_long_part_names_the_package_where_it_overflowed(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="pkg-part1"):
        join_parts(parts(tmp_path, [b"a" * 30, b"b"]), tmp_path / "m.gguf", 20, "0" * 64)


def test_a_changed_file_is_hashed_again(tmp_path: Path) -> None:
    whole = b"model bytes" * 100
    digest = hashlib.sha256(whole).hexdigest()
    target = join_parts(parts(tmp_path, [whole]), tmp_path / "m.gguf", len(whole), digest)
    target.write_bytes(b"X" + whole[1:])  # same size, new content (and mtime)
    assert not verified(target, len(whole), digest)


def test_profiles_and_paths() -> None:
    assert set(PROFILES) == {"smollm2-135m", "qwen2.5-coder-1.5b"}
    with pytest.raises(ConfigError, match="no profile 'gpt-9'"):
        profile("gpt-9")
    name, path = model_path("smollm2-135m", "", Path("/nonexistent"))
    assert name == "smollm2-135m" and path.suffix == ".gguf" and path.is_file()
    with pytest.raises(ConfigError, match="TESSERA_CHAT_MODEL_PATH"):
        model_path("smollm2-135m", "/nope/model.gguf", Path("/nonexistent"))
