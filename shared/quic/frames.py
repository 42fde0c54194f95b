"""Length-prefixed protobuf frames: a 4-byte big-endian length, then the message. No I/O."""

from __future__ import annotations

import struct
from collections import deque

from google.protobuf.message import Message

from shared.quic.errors import FrameError

HEADER = struct.Struct(">I")
#: A tile of 1 MiB plus its coordinates fits many times over; anything larger is a broken peer.
MAX_FRAME = 64 * 1024 * 1024


def encode_parts(message: Message) -> list[bytes]:
    """A frame as its header and its body, which a stream writes one after the other (a tile is not copied once more
    to join them)."""
    body: bytes = message.SerializeToString()
    if len(body) > MAX_FRAME:
        raise FrameError(f"quic: a {type(message).__name__} of {len(body)} bytes is over the {MAX_FRAME}-byte frame limit")
    return [HEADER.pack(len(body)), body]


def encode(message: Message) -> bytes:
    return b"".join(encode_parts(message))


class FrameDecoder:
    """Bytes in (any split), whole frame bodies out."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._want: int | None = None  # body length of the frame being read

    @property
    def buffered(self) -> int:
        return self._size

    def feed(self, data: bytes) -> None:
        if data:
            self._chunks.append(bytes(data))
            self._size += len(data)

    def _take(self, n: int) -> bytes:
        parts, need = [], n
        while need:
            chunk = self._chunks[0]
            if len(chunk) <= need:
                parts.append(self._chunks.popleft())
                need -= len(chunk)
            else:
                parts.append(chunk[:need])
                self._chunks[0] = chunk[need:]
                need = 0
        self._size -= n
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def next(self, max_frame: int | None = None) -> bytes | None:
        """The next whole frame body, or None until more bytes arrive; ``max_frame`` lowers the limit for this frame."""
        limit = min(self.max_frame, max_frame) if max_frame is not None else self.max_frame
        if self._want is None:
            if self._size < HEADER.size:
                return None
            (self._want,) = HEADER.unpack(self._take(HEADER.size))
        if self._want > limit:
            raise FrameError(f"quic: a frame of {self._want} bytes is over the {limit}-byte limit")
        if self._size < self._want:
            return None
        body, self._want = self._take(self._want), None
        return body

    def check_end(self) -> None:
        """At the end of the stream: nothing may be left half read."""
        if self._want is not None or self._size:
            raise FrameError(f"quic: the stream ended inside a frame ({self._size} bytes of it arrived)")
