"""The data plane's errors, drawn once; they are part of Tessera's error tree (shared.errors).

    QuicError (TesseraError)       base: anything the data plane raises
    ├── StreamRefused (StatusError)        the server refused the ticket (code: PERMISSION_DENIED, ...)
    ├── StreamClosed (Unavailable)         the peer reset or stopped the stream before its end
    ├── ConnectionLost (Unavailable)       the connection died under a stream
    └── FrameError (+ValueError)           a frame too large, truncated, or of the wrong type
"""

from __future__ import annotations

from shared.errors import StatusError, TesseraError, Unavailable


class QuicError(TesseraError):
    """Base of every data-plane error; messages start with "quic:"."""


class StreamRefused(QuicError, StatusError):
    def __init__(self, code: str, message: str) -> None:
        StatusError.__init__(self, code, message)


class StreamClosed(QuicError, Unavailable):
    pass


class ConnectionLost(QuicError, Unavailable):
    pass


class FrameError(QuicError, ValueError):
    pass
