"""Tessera's Python client SDK: ``async with Client() as tessera: ...`` (or ``SyncClient`` in scripts).

It loads no model runtime (no torch, no llama_cpp): it only speaks gRPC and the
QUIC data plane to a running mesh. See :mod:`shared.client.core` for the methods.
"""

from shared.client.core import Answer, Client, Transport, filters
from shared.client.events import ChatEvent, Citation, Done, Finished, Started, Step, TensorEvent, TileReady, Token
from shared.client.sync import SyncClient
from shared.client.tensor import ResampleResult, Stitcher, spec_for
from shared.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    StatusError,
    TesseraError,
    Unavailable,
)

__all__ = [
    "Answer",
    "Cancelled",
    "ChatEvent",
    "Citation",
    "Client",
    "DeadlineExceeded",
    "Done",
    "FailedPrecondition",
    "Finished",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResampleResult",
    "ResourceExhausted",
    "Started",
    "StatusError",
    "Step",
    "Stitcher",
    "SyncClient",
    "TensorEvent",
    "TesseraError",
    "TileReady",
    "Token",
    "Transport",
    "Unavailable",
    "filters",
    "spec_for",
]
