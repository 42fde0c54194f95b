"""Tessera's one error tree, shared by every layer: the runtime, the QUIC data plane, the services and the client SDK.

    TesseraError
    ├── ConfigError          a setting is missing, malformed or unusable
    ├── DependencyError      Postgres, NATS or Redis cannot be reached
    ├── DiscoveryError       no instance of a service could be found
    ├── InfraError           an embedded server failed to start or stop
    ├── StatusError(code, message)     a request's outcome, with its gRPC status name
    │   ├── InvalidArgument            INVALID_ARGUMENT   HTTP 400
    │   ├── NotFound                   NOT_FOUND          HTTP 404
    │   ├── PermissionDenied           PERMISSION_DENIED  HTTP 403
    │   ├── Unauthenticated            UNAUTHENTICATED    HTTP 401
    │   ├── FailedPrecondition         FAILED_PRECONDITION HTTP 409
    │   ├── ResourceExhausted(retry_after)  RESOURCE_EXHAUSTED HTTP 429 (+ Retry-After)
    │   ├── Unavailable                UNAVAILABLE        HTTP 503
    │   ├── DeadlineExceeded           DEADLINE_EXCEEDED  HTTP 504
    │   └── Cancelled, Internal, ...   the other codes (status_error() builds the right class)
    └── QuicError (shared.quic.errors) the data plane's errors; StreamRefused is also a StatusError

A pure module raises these and never imports grpc: the server interceptor
(shared.runtime.rpc) turns a StatusError into the call's status once, and the
gateway turns it into an HTTP status once (HTTP_STATUS). The client SDK turns a
failed call back into the same class (shared.client).

Messages start with the component name ("config: ...", "search: ...") and are one
sentence, so that a process can print ``str(err)`` and exit.
"""

from __future__ import annotations

from typing import ClassVar


class TesseraError(Exception):
    """Base of every error raised by Tessera."""


class ConfigError(TesseraError, ValueError):
    """A setting has a value that cannot be used; the message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"config: {setting}: {message}")


class DependencyError(TesseraError, ConnectionError):
    """A required dependency (Postgres, NATS) is unreachable."""


class DiscoveryError(TesseraError, LookupError):
    """No address is known for a service."""


class InfraError(TesseraError, RuntimeError):
    """An embedded infrastructure server failed."""


#: gRPC status name → HTTP status, the one mapping the gateway uses.
HTTP_STATUS: dict[str, int] = {
    "INVALID_ARGUMENT": 400, "OUT_OF_RANGE": 400, "FAILED_PRECONDITION": 409, "ALREADY_EXISTS": 409, "ABORTED": 409,
    "NOT_FOUND": 404, "PERMISSION_DENIED": 403, "UNAUTHENTICATED": 401, "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "CANCELLED": 499, "UNIMPLEMENTED": 501,
    "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
}


class StatusError(TesseraError):
    """A request failed with a status: ``code`` is the gRPC status name ("NOT_FOUND"), the message one sentence."""

    default_code: ClassVar[str] = "UNKNOWN"
    #: False: the caller's channel must not retry this call itself (the wait it would add is what failed); the
    #: client above it may ask again later (``Unavailable("...", retry_here=False)``).
    retry_here: bool = True

    def __init__(self, code: str, message: str) -> None:
        self.code, self.message = code, message
        super().__init__(message)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)


class _Fixed(StatusError):
    """A StatusError whose class fixes the code: ``NotFound("search: no document ...")``."""

    def __init__(self, message: str, *, retry_here: bool = True) -> None:
        super().__init__(self.default_code, message)
        self.retry_here = retry_here


class InvalidArgument(_Fixed, ValueError):
    default_code = "INVALID_ARGUMENT"


class NotFound(_Fixed, LookupError):
    default_code = "NOT_FOUND"


class PermissionDenied(_Fixed, PermissionError):
    default_code = "PERMISSION_DENIED"


class Unauthenticated(_Fixed, PermissionError):
    """No key, or a wrong one."""

    default_code = "UNAUTHENTICATED"


class FailedPrecondition(_Fixed):
    default_code = "FAILED_PRECONDITION"


class ResourceExhausted(_Fixed):
    """Busy or over a limit; ``retry_after`` (seconds) says when to try again, when known."""

    default_code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(_Fixed, ConnectionError):
    default_code = "UNAVAILABLE"


class DeadlineExceeded(_Fixed, TimeoutError):
    default_code = "DEADLINE_EXCEEDED"


class Cancelled(_Fixed):
    default_code = "CANCELLED"


class Internal(_Fixed):
    default_code = "INTERNAL"


_BY_CODE: dict[str, type[_Fixed]] = {cls.default_code: cls for cls in (
    InvalidArgument, NotFound, PermissionDenied, Unauthenticated, FailedPrecondition, ResourceExhausted, Unavailable, DeadlineExceeded,
    Cancelled, Internal)}


def status_error(code: str, message: str, retry_after: float | None = None) -> StatusError:
    """The class of the tree for a status name (a plain StatusError for the rarer codes)."""
    cls = _BY_CODE.get(code)
    if cls is ResourceExhausted:
        return ResourceExhausted(message, retry_after)
    return cls(message) if cls is not None else StatusError(code, message)
