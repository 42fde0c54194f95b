"""The resumable uploads' files (services/gateway/uploads.py) on a real folder: names, metadata, expiry, appends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.gateway.uploads import ChecksumMismatch, Uploads, parse_metadata, safe_name
from shared.errors import FailedPrecondition, InvalidArgument, NotFound
from shared.runtime.config import load_settings


def store(tmp_path: Path, **env: str) -> Uploads:
    return Uploads(load_settings({"TESSERA_DATA_DIR": str(tmp_path), **env}))


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for p in parts:
        yield p


@pytest.mark.parametrize(("name", "kept"), [("notes.md", "notes.md"), ("../../etc/passwd", "passwd"), ("a\\b\\c.pdf", "c.pdf"),
                                            ("we?ird*na:me.md", "we_ird_na_me.md"), ("x" * 300 + ".md", ("x" * 300 + ".md")[-200:])])
def test_a_file_name_keeps_its_last_part_only(name: str, kept: str) -> None:
    assert safe_name(name) == kept


@pytest.mark.parametrize("name", ["", "..", "/", " . "])
def test_an_empty_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match="filename"):
        safe_name(name)


def test_metadata_is_base64_pairs() -> None:
    assert parse_metadata("filename bm90ZXMubWQ=,project b3Bz,empty") == {"filename": "notes.md", "project": "ops", "empty": ""}
    with pytest.raises(InvalidArgument, match="base64"):
        parse_metadata("filename not*base64")


async def test_appends_refusals_and_expiry(tmp_path: Path) -> None:
    s = store(tmp_path, TESSERA_GATEWAY_UPLOAD_EXPIRE_H="1")
    up = s.create(10, {"filename": "a.md"})
    assert (tmp_path / "uploads").stat().st_mode & 0o777 == 0o700
    assert await s.append(s.get(up.id), 0, body(b"abc", b"de"), None) == 5
    with pytest.raises(FailedPrecondition, match="resume from there"):
        await s.append(s.get(up.id), 3, body(b"x"), None)
    with pytest.raises(ChecksumMismatch):
        await s.append(s.get(up.id), 5, body(b"fgh"), ("sha1", b"\0" * 20))
    with pytest.raises(InvalidArgument, match="past"):
        await s.append(s.get(up.id), 5, body(b"fghijk"), None)
    assert s.get(up.id).offset == 5  # neither refusal kept a byte
    assert s.expire_old() == 0
    info = tmp_path / "uploads" / f"{up.id}.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "expires": "2000-01-01T00:00:00+00:00"}))
    assert s.expire_old() == 1
    with pytest.raises(NotFound):
        s.get(up.id)
    with pytest.raises(NotFound):
        s.get("../../secrets")
