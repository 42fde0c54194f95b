"""Resumable uploads (the tus 1.0 protocol: creation, expiration, checksum, termination): the files on disk.

Each upload is ``<data_dir>/uploads/<id>.part`` (its bytes so far: the file's size is the offset) beside
``<id>.json`` (its length, name, project, expiry). A PATCH appends at the offset it names, streamed to disk chunk by
chunk (memory stays flat whatever the size); a broken connection keeps what arrived, and the client asks (HEAD)
where to go on. A PATCH with ``Upload-Checksum`` whose bytes do not match is cut back to where it started. Complete,
the file moves to ``<data_dir>/imports/uploads/`` (under ingest's roots) and is ingested. Unfinished uploads expire
after TESSERA_GATEWAY_UPLOAD_EXPIRE_H hours and are deleted. One writer at a time per upload (an exclusive lock on
its file, across gateway instances).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.errors import FailedPrecondition, InvalidArgument, NotFound
from shared.runtime.config import Settings

#: What a client's metadata may name: a file name (its last part only) and a project.
_SAFE = re.compile(r"[^\w.\- ]+")
CHECKSUMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}


class ChecksumMismatch(Exception):
    """The bytes of a PATCH do not match its Upload-Checksum (tus answers 460)."""


class TooLarge(Exception):
    """An upload over TESSERA_GATEWAY_UPLOAD_MAX_BYTES (413)."""


@dataclass
class Upload:
    id: str
    length: int
    filename: str
    project: str
    created: str
    expires: str
    offset: int = 0

    @property
    def expires_at(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.expires)


def parse_metadata(header: str) -> dict[str, str]:
    """tus Upload-Metadata: comma-separated ``key base64value`` pairs."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, value = pair.partition(" ")
        try:
            out[key] = base64.b64decode(value, validate=True).decode("utf-8") if value else ""
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument(f"uploads: Upload-Metadata {key!r} is not base64 of UTF-8 text") from None
    return out


def safe_name(name: str) -> str:
    """A file name to store: its last path part, odd characters replaced, at most 200 characters."""
    base = _SAFE.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    if not base:
        raise InvalidArgument("uploads: the metadata's filename is empty or only dots and separators")
    return base[-200:]


class Uploads:
    def __init__(self, settings: Settings) -> None:
        self.root = settings.path("uploads")
        self.done = settings.path("imports", "uploads")
        self.max_bytes = settings.gateway.upload_max_bytes
        self.expire = dt.timedelta(hours=settings.gateway.upload_expire_h)

    def _paths(self, upload_id: str) -> tuple[Path, Path]:
        try:
            uuid.UUID(hex=upload_id)
        except ValueError:
            raise NotFound(f"uploads: no upload {upload_id[:64]!r}") from None
        return self.root / f"{upload_id}.part", self.root / f"{upload_id}.json"

    def create(self, length: int, metadata: dict[str, str]) -> Upload:
        if length > self.max_bytes:
            raise TooLarge(f"uploads: {length} bytes is over the limit of {self.max_bytes} (TESSERA_GATEWAY_UPLOAD_MAX_BYTES)")
        filename = safe_name(metadata.get("filename", "") or metadata.get("name", ""))
        project = metadata.get("project", "").strip()
        if len(project) > 200 or "\x00" in project:
            raise InvalidArgument("uploads: the metadata's project is over 200 characters or holds a NUL")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        now = dt.datetime.now(dt.UTC)
        upload = Upload(uuid.uuid4().hex, length, filename, project, now.isoformat(), (now + self.expire).isoformat())
        part, info = self._paths(upload.id)
        part.touch(mode=0o600)
        info.write_text(json.dumps(asdict(upload)))
        info.chmod(0o600)
        return upload

    def get(self, upload_id: str) -> Upload:
        part, info = self._paths(upload_id)
        try:
            upload = Upload(**json.loads(info.read_text()))
            upload.offset = part.stat().st_size
        except (OSError, ValueError, TypeError):
            raise NotFound(f"uploads: no upload {upload_id}") from None
        if upload.expires_at < dt.datetime.now(dt.UTC):
            self.delete(upload_id)
            raise NotFound(f"uploads: upload {upload_id} expired at {upload.expires}")
        return upload

    @contextlib.contextmanager
    def writing(self, upload_id: str) -> Iterator[int]:
        """The upload's part file opened for appending, locked against another writer; yields its descriptor."""
        part, _ = self._paths(upload_id)
        fd = os.open(part, os.O_WRONLY | os.O_APPEND)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FailedPrecondition(f"uploads: another request is writing upload {upload_id}; wait for it, then ask "
                                         "its offset (HEAD)") from None
            yield fd
        finally:
            os.close(fd)

    async def append(self, upload: Upload, offset: int, body: AsyncIterator[bytes], checksum: tuple[str, bytes] | None) -> int:
        """Write the body at ``offset`` (the upload's current one); the new offset. Bytes past the declared length, or
        a checksum that does not match, leave the upload where it was."""
        if offset != upload.offset:
            raise FailedPrecondition(f"uploads: Upload-Offset is {offset}, the upload is at {upload.offset}; resume from there")
        digest = CHECKSUMS[checksum[0]]() if checksum else None
        written = 0
        with self.writing(upload.id) as fd:
            if os.fstat(fd).st_size != offset:  # another writer moved it between the check and the lock
                raise FailedPrecondition(f"uploads: the upload moved to {os.fstat(fd).st_size}; ask its offset (HEAD) again")
            try:
                async for chunk in body:
                    if offset + written + len(chunk) > upload.length:
                        raise InvalidArgument(f"uploads: the body goes past the upload's length of {upload.length} bytes")
                    os.write(fd, chunk)
                    written += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
                if checksum is not None and digest is not None and digest.digest() != checksum[1]:
                    raise ChecksumMismatch()
            except (InvalidArgument, ChecksumMismatch):
                os.ftruncate(fd, offset)
                raise
            finally:
                os.fsync(fd)  # what arrived stays, even when the connection broke
        return offset + written

    def finish(self, upload: Upload) -> Path:
        """Move a complete upload under the imports folder; its path there."""
        part, info = self._paths(upload.id)
        self.done.mkdir(parents=True, exist_ok=True)
        target = self.done / f"{upload.id[:8]}-{upload.filename}"
        part.rename(target)
        info.unlink(missing_ok=True)
        return target

    def delete(self, upload_id: str) -> bool:
        part, info = self._paths(upload_id)
        existed = part.exists() or info.exists()
        part.unlink(missing_ok=True)
        info.unlink(missing_ok=True)
        return existed

    def expire_old(self) -> int:
        """Delete the unfinished uploads past their expiry; how many."""
        gone = 0
        now = dt.datetime.now(dt.UTC)
        for info in self.root.glob("*.json") if self.root.is_dir() else []:
            try:
                expires = dt.datetime.fromisoformat(json.loads(info.read_text())["expires"])
            except (OSError, ValueError, KeyError):
                continue
            if expires < now:
                gone += self.delete(info.stem)
        return gone
