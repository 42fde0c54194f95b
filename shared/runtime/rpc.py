"""gRPC server plumbing, written once for every service: one interceptor that checks the caller's key, sets
the request id and the incoming deadline as context variables, records per-method metrics and turns every
error into a status with a sentence. The process around it (binding, health, lifecycle) is
:mod:`shared.runtime.host`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
import nats.errors
import psycopg
import psycopg_pool
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.errors import ConfigError, Internal, InvalidArgument, PermissionDenied, ResourceExhausted, StatusError, Unauthenticated, Unavailable
from shared.gen.tessera.v1 import common_pb2
from shared.runtime import principal, secrets, tracing
from shared.runtime.config import Settings, env_name
from shared.runtime.logs import REQUEST_ID_HEADER, new_request_id, request_id

log = logging.getLogger("tessera.rpc")

#: Trailing metadata of a RESOURCE_EXHAUSTED call: when to try again, in milliseconds.
RETRY_AFTER_HEADER = "retry-after-ms"
#: Absolute ``time.monotonic()`` deadline of the call being served, if it has one.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


@dataclass
class MethodStats:
    """Counters of one RPC method."""

    buckets: tuple[float, ...]
    calls: int = 0
    in_flight: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    latency_sum: float = 0.0
    latency_max: float = 0.0
    bucket_counts: list[int] = field(default_factory=list)

    def record(self, code: grpc.StatusCode, ms: float) -> None:
        if not self.bucket_counts:
            self.bucket_counts = [0] * len(self.buckets)
        self.calls += 1
        self.codes[code.name] += 1
        self.latency_sum += ms
        self.latency_max = max(self.latency_max, ms)
        for i, bound in enumerate(self.buckets):
            if ms <= bound:
                self.bucket_counts[i] += 1

    def to_proto(self, method: str) -> common_pb2.MethodMetrics:
        return common_pb2.MethodMetrics(
            method=method, calls=self.calls, codes=dict(self.codes), latency_ms_sum=self.latency_sum,
            latency_ms_max=self.latency_max, latency_le_ms=list(self.buckets),
            latency_le_counts=self.bucket_counts or [0] * len(self.buckets), in_flight=self.in_flight,
        )


class _CallScope:
    """Sets request id and deadline for one call and records its outcome."""

    def __init__(self, method: str, stats: MethodStats, context: grpc.aio.ServicerContext) -> None:
        self.method, self.stats, self.context = method, stats, context

    def __enter__(self) -> _CallScope:
        md = dict(self.context.invocation_metadata() or ())
        self._rid = request_id.set(str(md.get(REQUEST_ID_HEADER) or new_request_id()))
        carried = md.get(principal.HEADER)  # checked before the handler was chosen (CallerKeys.refusal)
        try:
            who = principal.from_metadata(carried) if carried is not None else principal.SYSTEM
        except ValueError:  # a server without CallerKeys: a malformed principal sees nothing, never everything
            who = principal.NOBODY
        self._who = principal.current.set(who)
        self.span = tracing.start(self.method.lstrip("/"), kind=SpanKind.SERVER, parent=tracing.extract(md), rpc_system="grpc")
        self._otel = otel_context.attach(trace.set_span_in_context(self.span))
        remaining = self.context.time_remaining()
        self._dl = deadline.set(time.monotonic() + remaining if remaining is not None else None)
        self.start = time.perf_counter()
        self.stats.in_flight += 1
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.stats.in_flight -= 1
        code = self.context.code() if hasattr(self.context, "code") else None
        if isinstance(code, int) and not isinstance(code, grpc.StatusCode):
            code = next((c for c in grpc.StatusCode if c.value[0] == code), None)
        if exc_type is not None and code in (None, grpc.StatusCode.OK):
            code = grpc.StatusCode.CANCELLED if issubclass(exc_type, asyncio.CancelledError) else grpc.StatusCode.UNKNOWN
        code = code or grpc.StatusCode.OK
        ms = (time.perf_counter() - self.start) * 1000
        self.stats.record(code, ms)
        self.span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code not in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
            tracing.fail(self.span, code.name)
        self.span.end()
        with contextlib.suppress(ValueError):  # detached in another context (a cancelled generator): nothing to undo
            otel_context.detach(self._otel)
        log.log(logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO, "rpc",
                extra={"method": self.method, "code": code.name, "ms": round(ms, 2)})
        if code == grpc.StatusCode.UNKNOWN and exc is not None:
            log.error("unhandled error in rpc", exc_info=exc)
        request_id.reset(self._rid)
        deadline.reset(self._dl)
        with contextlib.suppress(ValueError):
            principal.current.reset(self._who)


def unexpected(exc: BaseException, method: str) -> StatusError:
    """A documented status with a sentence for an exception a handler did not turn into one: a lost database or NATS
    connection is UNAVAILABLE (the client's retry policy tries again), anything else INTERNAL. Never an exception class
    name: the details go to the service's log, under the request id the sentence gives."""
    service = method.rsplit("/", 2)[-2].split(".")[-1].removesuffix("Service").lower() if "/" in method else "service"
    rid = request_id.get()
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):  # a row-level security policy refused a write
        who = principal.current.get()
        return PermissionDenied(f"{service}: {who.label} may not change that project's content (request {rid})")
    if isinstance(exc, psycopg.DataError):
        return InvalidArgument(f"{service}: the request holds a value the database cannot take (a NUL character, a number or "
                               f"time out of range); check its fields (request {rid})")
    if isinstance(exc, psycopg.OperationalError | psycopg_pool.PoolTimeout | psycopg.InterfaceError):
        return Unavailable(f"{service}: the database connection was lost or is busy; retry (request {rid})")
    if isinstance(exc, nats.errors.Error):
        return Unavailable(f"{service}: NATS is not reachable right now; retry (request {rid})")
    if isinstance(exc, ConnectionError | TimeoutError):
        return Unavailable(f"{service}: a dependency did not answer; retry (request {rid})")
    return Internal(f"{service}: an internal error stopped this request; the service log has the details under request {rid}")


#: Characters of an error's sentence sent to the client. A status message is a header, percent-encoded (a character
#: outside ASCII takes up to 12 bytes), and a client refuses headers past 8 KiB at random, past 16 KiB always.
MAX_DETAILS = 500


async def abort_with(context: grpc.aio.ServicerContext, exc: StatusError) -> NoReturn:
    """End the call with the error's status and sentence (and retry-after-ms for ResourceExhausted)."""
    if isinstance(exc, ResourceExhausted) and exc.retry_after is not None:
        context.set_trailing_metadata(((RETRY_AFTER_HEADER, str(int(exc.retry_after * 1000))),))
    elif not exc.retry_here:  # gRFC A6: a negative pushback tells the caller's retry policy not to try again
        context.set_trailing_metadata((("grpc-retry-pushback-ms", "-1"),))
    code = grpc.StatusCode[exc.code] if exc.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
    # The sentence travels as a header (grpc-message); one too large turns the status into the client's own
    # RESOURCE_EXHAUSTED: a sentence that quotes a huge input is cut.
    message = exc.message if len(exc.message) <= MAX_DETAILS else exc.message[:MAX_DETAILS] + "… (cut)"
    await context.abort(code, message)
    raise AssertionError("unreachable: abort raises")  # pragma: no cover


async def _drain(requests: AsyncIterator[object], limit: int = 1024) -> None:
    """Read what a client stream still sends (bounded) before aborting: aborting a call whose request stream is
    still open makes grpc-core report INTERNAL instead of our status."""
    count = 0
    with contextlib.suppress(Exception):
        async for _ in requests:
            count += 1
            if count >= limit:
                break


async def _abort_unexpected(ctx: grpc.aio.ServicerContext, exc: Exception, method: str, requests: Any) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError | asyncio.CancelledError):
        raise exc  # context.abort() already set the status; a cancelled call has none to send
    status = unexpected(exc, method)
    level = logging.WARNING if status.code == "UNAVAILABLE" else logging.ERROR
    log.log(level, "rpc failed", exc_info=exc, extra={"method": method, "code": status.code})
    if requests is not None:
        await _drain(requests)
    await abort_with(ctx, status)


@dataclass
class Undecodable:
    """A request whose bytes are not a valid message (invalid UTF-8 in a string, a truncated field): the handler
    never sees it; the call ends INVALID_ARGUMENT instead of grpc's INTERNAL "Exception deserializing request"."""

    why: str


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def run(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 — boundary: a request's bytes; any parse failure is the caller's bad input
            return Undecodable(str(exc) or "it cannot be parsed")

    return run


def _refuse(req: Any, method: str) -> None:
    if isinstance(req, Undecodable):
        name = method.rsplit("/", 1)[-1]
        raise InvalidArgument(f"{name}: the request is not a valid protobuf message ({req.why}); "
                              "strings must be UTF-8 and every field well-formed")


async def _checked(requests: AsyncIterator[Any], method: str) -> AsyncIterator[Any]:
    """A client stream whose undecodable messages raise InvalidArgument where the handler reads them."""
    async for req in requests:
        _refuse(req, method)
        yield req


#: Methods any caller may use without a key: health (probes, load balancers) and reflection (the API's shape, no data).
OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")


class CallerKeys:
    """The keys a server accepts (``authorization: Bearer <key>`` metadata)."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = secrets.BearerKeys(keys)

    def refusal(self, method: str, metadata: Any) -> str | None:
        """Why a call may not run (a sentence), or None."""
        if method.startswith(OPEN_METHODS):
            return None
        given = next((v for k, v in (metadata or ()) if k == "authorization"), None)
        if isinstance(given, bytes):
            given = given.decode("latin-1")
        verdict, _ = self._keys.check(given)
        if verdict == "missing":
            return "rpc: this call needs a key: send the metadata 'authorization: Bearer <key>' (the admin key of <data_dir>/secrets)"
        if verdict != "ok":
            return "rpc: the key is not valid"
        carried = next((v for k, v in (metadata or ()) if k == principal.HEADER), None)
        if carried is not None:
            try:
                principal.from_metadata(carried)
            except ValueError as exc:
                return f"rpc: {exc}"
        return None


def checked_keys(settings: Settings) -> list[str]:
    """The keys this server accepts; a short or placeholder TESSERA_RPC_KEYS entry stops the service (exit 2)."""
    for key in settings.rpc.rpc_keys:
        if len(key) < 24 or "CHANGE-ME" in key.upper():
            raise ConfigError(env_name("rpc_keys"), "each key must be a long random string (at least 24 characters, e.g. "
                                                    "`openssl rand -base64 32`), not a placeholder")
    return secrets.rpc_keys(settings)


def _denied(message: str) -> Callable[..., Any]:
    async def deny(req: Any, ctx: grpc.aio.ServicerContext) -> None:
        raise Unauthenticated(message)

    return deny


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Keys, request ids, deadlines, per-method metrics, and StatusError → gRPC status, for every handler."""

    def __init__(self, metrics: dict[str, MethodStats], buckets: tuple[float, ...], keys: CallerKeys | None = None) -> None:
        self.metrics, self.buckets, self.keys = metrics, buckets, keys

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        method = details.method
        stats = self.metrics.setdefault(method, MethodStats(self.buckets))
        ser = {"request_deserializer": _tolerant(handler.request_deserializer), "response_serializer": handler.response_serializer}
        refusal = self.keys.refusal(method, details.invocation_metadata) if self.keys is not None else None
        if refusal is not None:  # the same wrappers: counted, and a streamed request is read (bounded) before the status
            deny = _denied(refusal)
            if handler.unary_unary:
                return grpc.unary_unary_rpc_method_handler(_wrap_unary(deny, method, stats, False), **ser)
            if handler.stream_unary:
                return grpc.stream_unary_rpc_method_handler(_wrap_unary(deny, method, stats, True), **ser)
            if handler.unary_stream:
                return grpc.unary_stream_rpc_method_handler(_wrap_stream(deny, method, stats, False), **ser)
            return grpc.stream_stream_rpc_method_handler(_wrap_stream(deny, method, stats, True), **ser)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary, method, stats, False), **ser)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_wrap_unary(handler.stream_unary, method, stats, True), **ser)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_stream(handler.unary_stream, method, stats, False), **ser)
        return grpc.stream_stream_rpc_method_handler(_wrap_stream(handler.stream_stream, method, stats, True), **ser)


def _wrap_unary(fn: Callable[..., Any], method: str, stats: MethodStats, streamed: bool) -> Callable[..., Any]:
    async def unary(req: Any, ctx: grpc.aio.ServicerContext) -> object:
        with _CallScope(method, stats, ctx):
            try:
                if streamed:
                    return await fn(_checked(req, method), ctx)
                _refuse(req, method)
                return await fn(req, ctx)
            except StatusError as exc:
                if streamed:
                    await _drain(req)
                await abort_with(ctx, exc)
            except Exception as exc:  # noqa: BLE001 — boundary: a request; every other failure still leaves as a documented status
                await _abort_unexpected(ctx, exc, method, req if streamed else None)

    return unary


def _wrap_stream(fn: Callable[..., Any], method: str, stats: MethodStats, streamed: bool) -> Callable[..., Any]:
    """Wrap a response-streaming handler, an async generator or a coroutine using context.write."""
    if inspect.isasyncgenfunction(fn):
        async def gen(req: Any, ctx: grpc.aio.ServicerContext) -> AsyncIterator[object]:
            with _CallScope(method, stats, ctx):
                try:
                    if not streamed:
                        _refuse(req, method)
                    async for item in fn(_checked(req, method) if streamed else req, ctx):
                        yield item
                except StatusError as exc:
                    if streamed:
                        await _drain(req)
                    await abort_with(ctx, exc)
                except Exception as exc:  # noqa: BLE001 — boundary: a request; every other failure still leaves as a documented status
                    await _abort_unexpected(ctx, exc, method, req if streamed else None)

        return gen

    async def coro(req: Any, ctx: grpc.aio.ServicerContext) -> None:
        with _CallScope(method, stats, ctx):
            try:
                if not streamed:
                    _refuse(req, method)
                await fn(_checked(req, method) if streamed else req, ctx)
            except StatusError as exc:
                if streamed:
                    await _drain(req)
                await abort_with(ctx, exc)
            except Exception as exc:  # noqa: BLE001 — boundary: a request; every other failure still leaves as a documented status
                await _abort_unexpected(ctx, exc, method, req if streamed else None)

    return coro


