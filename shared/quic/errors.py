"""The data plane's errors, drawn once.

    QuicError                      base: anything the data plane raises
    ├── StreamRefused              the server refused the ticket (code: PERMISSION_DENIED, ...)
    ├── StreamClosed               the peer reset or stopped the stream before its end
    ├── ConnectionLost (+ConnectionError)  the connection died under a stream
    └── FrameError (+ValueError)   a frame too large, truncated, or of the wrong type
"""

from __future__ import annotations


class QuicError(Exception):
    """Base of every data-plane error; messages start with "quic:"."""


class StreamRefused(QuicError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class StreamClosed(QuicError):
    pass


class ConnectionLost(QuicError, ConnectionError):
    pass


class FrameError(QuicError, ValueError):
    pass
