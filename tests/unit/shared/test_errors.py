"""The error tree: one class per status, its HTTP status, and the data plane's errors inside it."""

from __future__ import annotations

import pytest

from shared.errors import (
    HTTP_STATUS,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StatusError,
    TesseraError,
    Unavailable,
    status_error,
)
from shared.quic.errors import ConnectionLost, FrameError, QuicError, StreamClosed, StreamRefused


@pytest.mark.parametrize(("cls", "code", "http"), [
    (InvalidArgument, "INVALID_ARGUMENT", 400), (NotFound, "NOT_FOUND", 404), (PermissionDenied, "PERMISSION_DENIED", 403),
    (ResourceExhausted, "RESOURCE_EXHAUSTED", 429), (Unavailable, "UNAVAILABLE", 503), (DeadlineExceeded, "DEADLINE_EXCEEDED", 504),
])
def test_each_class_carries_its_code_and_http_status(cls: type[StatusError], code: str, http: int) -> None:
    err = cls("svc: what went wrong")  # type: ignore[call-arg]
    assert (err.code, err.http_status, err.message, str(err)) == (code, http, "svc: what went wrong", "svc: what went wrong")
    assert isinstance(err, StatusError) and isinstance(err, TesseraError)
    again = status_error(code, "x")
    assert type(again) is cls


def test_rarer_codes_stay_plain_status_errors_and_unknown_ones_are_500() -> None:
    err = status_error("ABORTED", "svc: conflict")
    assert type(err) is StatusError and err.http_status == 409
    assert status_error("NO_SUCH_CODE", "x").http_status == 500
    assert HTTP_STATUS["UNAUTHENTICATED"] == 401


def test_resource_exhausted_says_when_to_retry() -> None:
    assert ResourceExhausted("busy", retry_after=1.5).retry_after == 1.5
    assert status_error("RESOURCE_EXHAUSTED", "busy", 3.0).retry_after == 3.0  # type: ignore[attr-defined]


def test_the_data_plane_errors_join_the_tree() -> None:
    refused = StreamRefused("PERMISSION_DENIED", "quic: the ticket is not valid")
    assert isinstance(refused, QuicError) and isinstance(refused, StatusError) and refused.http_status == 403
    for lost in (ConnectionLost("quic: gone"), StreamClosed("quic: reset")):
        assert isinstance(lost, Unavailable) and isinstance(lost, QuicError) and lost.code == "UNAVAILABLE"
    assert isinstance(ConnectionLost("x"), ConnectionError)
    assert isinstance(FrameError("quic: too large"), ValueError) and isinstance(FrameError("x"), TesseraError)


def test_errors_keep_their_builtin_families() -> None:
    assert isinstance(InvalidArgument("x"), ValueError) and isinstance(NotFound("x"), LookupError)
    assert isinstance(PermissionDenied("x"), PermissionError) and isinstance(DeadlineExceeded("x"), TimeoutError)
