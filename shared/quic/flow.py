"""Flow-control arithmetic, no I/O.

aioquic raises a receive limit whenever the peer has *sent* half of it, so a
reader that stops reading still grants credit without end. Here credit follows
what the application has *consumed*: a stalled reader stops its sender once one
window is outstanding, and only that stream stops (the connection window is
several stream windows, and also follows consumption).
"""

from __future__ import annotations


def raised_limit(limit: int, consumed: int, window: int) -> int:
    """The receive limit to advertise: consumed + window once half a window has been consumed, else unchanged."""
    if limit - consumed <= window // 2:
        return consumed + window
    return limit


def may_send(buffered: int, size: int, window: int) -> bool:
    """Whether a frame of ``size`` may join ``buffered`` unacknowledged bytes; one frame always may when nothing is buffered."""
    return buffered == 0 or buffered + size <= window
