"""Encrypted snapshot files (shared/ops/seal.py): what is sealed opens only with its key and its name, whole; a changed,
cut, reordered or borrowed segment, a wrong passphrase and a key file others can read are each refused with a reason."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from shared.ops import seal


@pytest.fixture(autouse=True)
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seal, "SEGMENT", 64)


def sealed(tmp_path: Path, data: bytes, key: bytes, name: str = "db.dump") -> Path:
    path = tmp_path / "sealed"
    with seal.SealedWriter(path.open("wb"), key, name) as out:
        for i in range(0, len(data), 50):  # writes that do not line up with segments
            out.write(data[i:i + 50])
    return path


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 128, 1000])
def test_what_is_sealed_opens_whole_and_is_not_plain(tmp_path: Path, size: int) -> None:
    key, data = os.urandom(32), bytes(range(256)) * 4
    data = data[:size]
    path = sealed(tmp_path, data, key)
    assert b"".join(seal.opened(path, key, "db.dump")) == data
    assert size < 16 or data[:16] not in path.read_bytes()
    seal.unseal(path, key, "db.dump", tmp_path / "plain")
    assert (tmp_path / "plain").read_bytes() == data and oct((tmp_path / "plain").stat().st_mode & 0o777) == "0o600"


def test_a_changed_cut_reordered_or_borrowed_file_is_refused(tmp_path: Path) -> None:
    key, data = os.urandom(32), os.urandom(300)
    raw = sealed(tmp_path, data, key).read_bytes()
    head, body = raw[:16], raw[16:]
    seg = 64 + 16
    cases = {
        "a flipped byte": head + body[:10] + bytes([body[10] ^ 1]) + body[11:],
        "cut after a segment": head + body[:2 * seg],
        "cut inside a segment": raw[:-7],
        "two segments swapped": head + body[seg:2 * seg] + body[:seg] + body[2 * seg:],
        "no segment at all": head,
        "not sealed": b"PGDMP" + data,
    }
    for what, bad in cases.items():
        path = tmp_path / "bad"
        path.write_bytes(bad)
        with pytest.raises(seal.SealError) as refused:
            b"".join(seal.opened(path, key, "db.dump"))
        assert "damaged" in str(refused.value) or "not an encrypted" in str(refused.value), what
    good = tmp_path / "sealed"
    with pytest.raises(seal.SealError):  # another part's name: a dump passed off as the files, or the other way round
        b"".join(seal.opened(good, key, "files.tar.gz"))
    with pytest.raises(seal.SealError):
        b"".join(seal.opened(good, os.urandom(32), "db.dump"))
    with pytest.raises(seal.SealError):  # a failed unseal leaves nothing behind
        seal.unseal(good, os.urandom(32), "db.dump", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_passphrase_derives_its_key_and_a_wrong_one_is_told_apart(tmp_path: Path) -> None:
    params = seal.new_params()
    key = seal.derive(b"correct horse battery staple", params)
    assert key == seal.derive(b"correct horse battery staple", params) and len(key) == 32
    assert key != seal.derive(b"correct horse battery staple", seal.new_params())  # a salt per snapshot
    check = seal.key_check(key)
    seal.check_key(key, check)
    with pytest.raises(seal.SealError, match="does not open this snapshot"):
        seal.check_key(seal.derive(b"wrong horse battery staple", params), check)
    with pytest.raises(seal.SealError, match="reads aes-256-gcm"):
        seal.derive(b"x" * 10, {**params, "scheme": "rot13"})


def test_a_key_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"a long enough passphrase\n")
    path.chmod(0o644)
    with pytest.raises(seal.SealError, match="can be read by others"):
        seal.read_passphrase(path)
    path.chmod(0o600)
    assert seal.read_passphrase(path) == b"a long enough passphrase"
    path.write_bytes(b"short\n")
    with pytest.raises(seal.SealError, match="under 8 bytes"):
        seal.read_passphrase(path)
    with pytest.raises(seal.SealError, match="cannot be read"):
        seal.read_passphrase(tmp_path / "missing")


def test_a_sealed_archive_streams_through_tarfile(tmp_path: Path) -> None:
    key = os.urandom(32)
    path = tmp_path / "files"
    with seal.SealedWriter(path.open("wb"), key, "files.tar.gz") as out, tarfile.open(fileobj=out, mode="w|gz") as tar:
        for i in range(5):
            data = os.urandom(100 * i)
            info = tarfile.TarInfo(f"notes/{i}.md")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with tarfile.open(fileobj=seal.SealedReader(path, key, "files.tar.gz"), mode="r|gz") as tar:
        assert [(m.name, m.size) for m in tar] == [(f"notes/{i}.md", 100 * i) for i in range(5)]
