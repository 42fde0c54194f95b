"""The SDK's plumbing: failed calls become the error tree, and a stream is opened over QUIC or gRPC in one place."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

import grpc
from google.protobuf.message import Message

from shared.errors import StatusError, Unavailable, status_error
from shared.quic import QuicClient, QuicError, StreamRefused
from shared.runtime.rpc import RETRY_AFTER_HEADER

M = TypeVar("M", bound=Message)
E = TypeVar("E")
#: Every service starts its sentences with its name: "search: query is empty".
SERVICE_PREFIX = re.compile(r"^[a-z]+: ")


def _retry_after(trailing: Any) -> float | None:
    """Seconds from a call's retry-after-ms trailing metadata, when the service sent it."""
    retry_ms = dict(trailing or ()).get(RETRY_AFTER_HEADER, "")
    return int(retry_ms) / 1000 if str(retry_ms).isdigit() else None


def from_rpc_error(exc: grpc.aio.AioRpcError, service: str) -> StatusError:
    """The StatusError of a failed call: its code, its sentence, and retry-after when the service sent one."""
    retry_after = _retry_after(exc.trailing_metadata())
    code = exc.code().name if exc.code() is not None else "UNKNOWN"
    details = exc.details() or ""
    if not details:
        details = f"{service}: the call ended with {code}"
    elif code == "UNAVAILABLE" and not SERVICE_PREFIX.match(details):  # grpc-core's own words: the connection failed
        details = f"{service}: the service cannot be reached ({details})"
    if code == "CANCELLED":
        # A call this side cancels raises CancelledError, never this: the other end cancelled it, as a server does with a
        # call it had not answered when it stopped. Ask again.
        return Unavailable(f"{service}: the service cancelled the call ({details}), as it does while stopping; retry")
    return status_error(code, details, retry_after)


@contextlib.contextmanager
def rpc_errors(service: str) -> Iterator[None]:
    """Inside: a failed gRPC call raises its StatusError; a broken data-plane stream raises Unavailable."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, service) from None
    except StreamRefused:
        raise  # the server's own status and sentence
    except QuicError as exc:
        raise Unavailable(f"{service}: the stream broke: {exc}") from None


class EventStream(Generic[E]):
    """Typed events of one streamed call, whichever transport carries it; ``cancel()`` stops it at the producer.

    ``conversation_id`` (chat) or ``job_id`` (tensor) is known once the call is admitted.
    """

    def __init__(self, frames: Any, convert: Callable[[Any], E], service: str, admitted: dict[str, str]) -> None:
        self._frames, self._convert, self.service = frames, convert, service
        self.admitted = admitted

    @property
    def conversation_id(self) -> str:
        return self.admitted.get("conversation_id", "")

    @property
    def job_id(self) -> str:
        return self.admitted.get("job_id", "")

    def __aiter__(self) -> AsyncIterator[E]:
        return self._events()

    async def _events(self) -> AsyncIterator[E]:
        try:
            with rpc_errors(self.service):
                async for frame in self._frames:
                    yield self._convert(frame)
        finally:
            self.cancel()

    def cancel(self) -> None:
        self._frames.cancel()


async def open_stream(service: str, message: type[M], quic: QuicClient | None,
                      start: Callable[[], Awaitable[Any]], call: Callable[[], Any], *, admission: bool = True) -> tuple[Any, dict[str, str]]:
    """(frames, admitted) of a streamed call: over QUIC when ``quic`` is given (``start`` returns a reply with a
    ticket, then the ticket's stream is read), else the gRPC stream ``call()``. With ``admission`` (a service that
    sends its initial metadata when it admits the call, as chat does), the gRPC stream is returned once admitted, so
    that a refusal before the stream opens raises its StatusError here; without, it surfaces on the first read."""
    with rpc_errors(service):
        if quic is not None:
            reply = await start()
            admitted = {f.name: str(v) for f, v in reply.ListFields() if f.name in ("conversation_id", "job_id")}
            try:
                return await quic.open(reply.ticket, message), admitted
            except StreamRefused:
                raise
            except QuicError as exc:
                raise Unavailable(f"{service}: the stream could not be opened: {exc}") from None
        stream = call()
        if not admission:
            return stream, {}
        md = {k: str(v) for k, v in (await stream.initial_metadata() or ())}
        if not md:  # an admitted call sends metadata first; none means the call has already ended
            code = await stream.code()
            if code != grpc.StatusCode.OK:
                raise status_error(code.name, await stream.details() or f"{service}: {code.name}",
                                   _retry_after(await stream.trailing_metadata()))
        return stream, {k.removeprefix("x-").replace("-", "_"): v for k, v in md.items()}
