"""Encrypted snapshot files: AES-256-GCM in segments, keyed by a passphrase through scrypt (the ``cryptography`` package).

A sealed file is ``MAGIC``, an 8-byte random nonce prefix, then segments: each is up to ``SEGMENT`` bytes of the
plain file encrypted with the nonce ``prefix || counter`` and, as associated data, the part's name and whether it is
the last segment. So a segment cannot be changed, moved, dropped or taken from another file, and a file cut after any
segment fails (its last segment is not marked last). Memory stays at a segment or two whatever the file's size.

The key is scrypt(passphrase, salt) with a random salt per snapshot, kept (with the parameters) in the manifest, which
stays readable: a snapshot can be listed and its files checked against their sha256 without the passphrase.
"""

from __future__ import annotations

import base64
import io
import os
import secrets as _random
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from shared.errors import TesseraError

SCHEME = "aes-256-gcm-segments-1"
MAGIC = b"TSEAL001"
SEGMENT = 1 << 20
TAG = 16
#: scrypt's cost: 2**15 x 8 x 128 bytes = 32 MiB and about 0.1 s per key; a guessed passphrase costs the same.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 1 << 15, 8, 1
#: Encrypted with the key, in the manifest: a wrong passphrase is told apart from a damaged file.
CHECK = b"tessera snapshot key check"


class SealError(TesseraError):
    """A passphrase that does not open a file, or a sealed file changed, cut or not sealed at all."""


def new_params() -> dict[str, Any]:
    return {"scheme": SCHEME, "kdf": "scrypt", "salt": base64.b64encode(_random.token_bytes(16)).decode(), "n": SCRYPT_N,
            "r": SCRYPT_R, "p": SCRYPT_P}


def derive(passphrase: bytes, params: dict[str, Any]) -> bytes:
    if params.get("scheme") != SCHEME or params.get("kdf") != "scrypt":
        raise SealError(f"snapshot: encrypted with {params.get('scheme')!r}; this Tessera reads {SCHEME}")
    if not passphrase:
        raise SealError("snapshot: the passphrase is empty")
    kdf = Scrypt(salt=base64.b64decode(params["salt"]), length=32, n=int(params["n"]), r=int(params["r"]), p=int(params["p"]))
    return kdf.derive(passphrase)


def key_check(key: bytes) -> str:
    nonce = _random.token_bytes(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, CHECK, b"check")).decode()


def check_key(key: bytes, check: str) -> None:
    raw = base64.b64decode(check)
    try:
        AESGCM(key).decrypt(raw[:12], raw[12:], b"check")
    except InvalidTag:
        raise SealError("snapshot: that passphrase or key does not open this snapshot") from None


def read_passphrase(path: Path) -> bytes:
    """A passphrase (or key: any secret text) from a file only its owner can read; its last newline is not part of it."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise SealError(f"snapshot: the key file {path} cannot be read: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SealError(f"snapshot: the key file {path} can be read by others (mode {oct(mode & 0o777)}); chmod 600 it")
    secret = data.rstrip(b"\r\n")
    if len(secret) < 8:
        raise SealError(f"snapshot: the key file {path} holds under 8 bytes; a passphrase or key needs more")
    return secret


class SealedWriter:
    """A write-only file object that seals what is written into ``out`` (closed by ``close``)."""

    def __init__(self, out: IO[bytes], key: bytes, name: str) -> None:
        self.out, self.aead, self.name = out, AESGCM(key), name.encode()
        self.prefix = _random.token_bytes(8)
        self.counter = 0
        self.buffer = bytearray()
        self.closed = False
        out.write(MAGIC + self.prefix)

    def _segment(self, plain: bytes, last: bool) -> None:
        nonce = self.prefix + self.counter.to_bytes(4, "big")
        self.out.write(self.aead.encrypt(nonce, plain, self.name + (b"\x01" if last else b"\x00")))
        self.counter += 1
        if self.counter >= 1 << 32:
            raise SealError("snapshot: a file over 4 PiB cannot be sealed")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.buffer += data
        while len(self.buffer) > SEGMENT:  # the last segment is written by close, so it can be marked last
            self._segment(bytes(self.buffer[:SEGMENT]), last=False)
            del self.buffer[:SEGMENT]
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        if not self.closed:
            self._segment(bytes(self.buffer), last=True)
            self.buffer.clear()
            self.closed = True
            self.out.close()

    def __enter__(self) -> SealedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def opened(path: Path, key: bytes, name: str) -> Iterator[bytes]:
    """The plain bytes of a sealed file, segment by segment; SealError at the first thing wrong."""
    aead = AESGCM(key)
    with path.open("rb") as f:
        head = f.read(len(MAGIC) + 8)
        if head[:len(MAGIC)] != MAGIC or len(head) < len(MAGIC) + 8:
            raise SealError(f"snapshot: {path.name} is not an encrypted snapshot file")
        prefix = head[len(MAGIC):]
        counter = 0
        block = f.read(SEGMENT + TAG)
        while True:
            after = f.read(SEGMENT + TAG)
            last = not after
            nonce = prefix + counter.to_bytes(4, "big")
            try:
                yield aead.decrypt(nonce, block, name.encode() + (b"\x01" if last else b"\x00"))
            except InvalidTag:
                raise SealError(f"snapshot: {path.name} does not decrypt at segment {counter}: it is damaged, cut, or "
                                "sealed with another key") from None
            if last:
                return
            block, counter = after, counter + 1


def unseal(path: Path, key: bytes, name: str, dest: Path) -> None:
    """Decrypt ``path`` into ``dest`` (0600); a failure leaves no ``dest``."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for plain in opened(path, key, name):
                out.write(plain)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


class SealedReader(io.RawIOBase):
    """The plain bytes of a sealed file as a read-only stream (for tarfile's stream mode)."""

    def __init__(self, path: Path, key: bytes, name: str) -> None:
        super().__init__()
        self.chunks = opened(path, key, name)
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                self.pending = next(self.chunks)
            except StopIteration:
                return 0
            if not self.pending:  # an empty last segment
                continue
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n
