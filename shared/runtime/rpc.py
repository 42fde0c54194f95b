"""gRPC server bootstrap, written once for every service.

:class:`ServiceHost` binds the port (SO_REUSEPORT, so pm2 instances of a
service share it), registers grpc.health.v1, reflection and the Node service,
and wraps every handler in one interceptor that sets the request id and the
incoming deadline as context variables and records per-method metrics.

Readiness is real: health stays NOT_SERVING until every required dependency
answers and the startup hooks (model loading) have finished, and a monitor
turns it back to NOT_SERVING when a required dependency goes away. An optional
dependency (the cache) that is down only marks the node DEGRADED.

Shutdown, the same for every service (``shutdown``), on SIGTERM:

1. stop accepting: health NOT_SERVING, then the ``on_stop_accepting`` hooks
   (NATS deregistration);
2. drain, concurrently and under one deadline of ``grace_s``: in-flight gRPC calls,
   and every ``on_drain`` hook (the gateway's HTTP, QUIC streams, ingest's jobs),
   each told how long it has left; what is still running then is cancelled;
3. close dependencies: the ``on_close`` hooks, in reverse order, each bounded.

The whole takes at most grace_s + STOP_ACCEPTING_S + CLOSE_S (+ a little), within
pm2's kill_timeout of grace_s + 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NoReturn

import grpc
import nats.errors
import psycopg
import psycopg_pool
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.errors import ConfigError, Internal, InvalidArgument, ResourceExhausted, StatusError, Unauthenticated, Unavailable
from shared.gen.tessera.v1 import common_pb2, common_pb2_grpc
from shared.runtime import secrets, tracing
from shared.runtime.config import Settings, env_name
from shared.runtime.logs import REQUEST_ID_HEADER, new_request_id, request_id

log = logging.getLogger("tessera.rpc")

VERSION = "0.1.0"
#: Bounds of the shutdown's first and last stages (the middle one is grace_s).
STOP_ACCEPTING_S = 1.0
CLOSE_S = 2.5
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
            log.error("unhandled error in rpc", exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]
        request_id.reset(self._rid)
        deadline.reset(self._dl)


def unexpected(exc: BaseException, method: str) -> StatusError:
    """A documented status with a sentence for an exception a handler did not turn into one: a lost database or NATS
    connection is UNAVAILABLE (the client's retry policy tries again), anything else INTERNAL. Never an exception class
    name: the details go to the service's log, under the request id the sentence gives."""
    service = method.rsplit("/", 2)[-2].split(".")[-1].removesuffix("Service").lower() if "/" in method else "service"
    rid = request_id.get()
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


async def abort_with(context: grpc.aio.ServicerContext, exc: StatusError) -> NoReturn:
    """End the call with the error's status and sentence (and retry-after-ms for ResourceExhausted)."""
    if isinstance(exc, ResourceExhausted) and exc.retry_after is not None:
        context.set_trailing_metadata(((RETRY_AFTER_HEADER, str(int(exc.retry_after * 1000))),))
    code = grpc.StatusCode[exc.code] if exc.code in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
    await context.abort(code, exc.message)
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
        except Exception as exc:  # noqa: BLE001 — any parse failure is the caller's bad input
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
        return None if verdict == "ok" else "rpc: the key is not valid"


def _checked_keys(settings: Settings) -> list[str]:
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
            except Exception as exc:  # noqa: BLE001 — every other failure still leaves as a documented status
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
                except Exception as exc:  # noqa: BLE001
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
            except Exception as exc:  # noqa: BLE001
                await _abort_unexpected(ctx, exc, method, req if streamed else None)

    return coro


CheckFn = Callable[[], Awaitable[str]]


@dataclass
class Dependency:
    """Something a service needs; ``check`` raises when it is unusable, else returns a detail."""

    name: str
    check: CheckFn
    required: bool = True
    state: common_pb2.DependencyState = common_pb2.DEPENDENCY_STATE_UNSPECIFIED
    detail: str = "not checked yet"


class _NodeServicer(common_pb2_grpc.NodeServiceServicer):
    def __init__(self, host: ServiceHost) -> None:
        self.host = host

    async def GetInfo(self, request: common_pb2.GetInfoRequest, context: grpc.aio.ServicerContext) -> common_pb2.NodeInfo:
        return self.host.info()


class ServiceHost:
    """One service process: a grpc.aio server with health, reflection, metrics and lifecycle."""

    def __init__(self, settings: Settings, service: str, instance_id: str) -> None:
        self.settings, self.service, self.instance_id = settings, service, instance_id
        self.dependencies: list[Dependency] = []
        self.metrics: dict[str, MethodStats] = {}
        self.health = health.aio.HealthServicer()
        self.started_at = Timestamp()
        self.started_at.GetCurrentTime()
        self._startup_done = False
        self._stopping = asyncio.Event()
        self._service_names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME, "tessera.v1.NodeService"]
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._stop_accepting: list[Callable[[], Awaitable[None]]] = []
        self._drains: list[Callable[[float], Awaitable[None]]] = []
        self._shutdown_started = False
        self._monitor: asyncio.Task[None] | None = None
        buckets = tuple(float(b) for b in settings.rpc.metrics_buckets_ms)
        self.server = grpc.aio.server(
            interceptors=[ServerInterceptor(self.metrics, buckets, CallerKeys(_checked_keys(settings)))],
            options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                     ("grpc.max_send_message_length", 64 * 1024 * 1024)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        common_pb2_grpc.add_NodeServiceServicer_to_server(_NodeServicer(self), self.server)

    @property
    def grpc_addr(self) -> str:
        return self.settings.address(self.service)

    def add_servicer(self, add_fn: Callable[[object, grpc.aio.Server], None], servicer: object, full_name: str) -> None:
        """Register a generated servicer; full_name is e.g. "tessera.v1.SearchService"."""
        add_fn(servicer, self.server)
        self._service_names.append(full_name)

    def add_service(self, pb2: ModuleType, pb2_grpc: ModuleType, name: str, **handlers: Callable[..., Any]) -> None:
        """Serve the proto service ``name`` (e.g. "SearchService") with one handler per RPC; every RPC must have one."""
        descriptor: ServiceDescriptor = pb2.DESCRIPTOR.services_by_name[name]
        missing = [m.name for m in descriptor.methods if m.name not in handlers]
        unknown = sorted(set(handlers) - {m.name for m in descriptor.methods})
        if missing or unknown:
            raise TypeError(f"{name}: handlers missing for {missing}, unknown {unknown}")
        servicer = type(f"{name}Servicer", (getattr(pb2_grpc, f"{name}Servicer"),),
                        {k: staticmethod(fn) for k, fn in handlers.items()})()
        self.add_servicer(getattr(pb2_grpc, f"add_{name}Servicer_to_server"), servicer, descriptor.full_name)

    def add_dependency(self, name: str, check: CheckFn, *, required: bool = True) -> None:
        self.dependencies.append(Dependency(name, check, required))

    def on_close(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run fn after the drain (in reverse order of registration): closing a dependency."""
        self._cleanups.append(fn)

    def on_stop_accepting(self, fn: Callable[[], Awaitable[None]]) -> None:
        """Run fn first on shutdown, with health: stop being found (NATS deregistration)."""
        self._stop_accepting.append(fn)

    def on_drain(self, fn: Callable[[float], Awaitable[None]]) -> None:
        """Run fn(seconds left) on shutdown, beside the gRPC drain: let its work finish, cancel the rest by then."""
        self._drains.append(fn)

    async def bind(self) -> None:
        """Claim the port now, so a conflict is found before anything slow; serving starts in mark_ready."""
        host, port = self.settings.core.host, self.settings.port(self.service)
        setting = env_name("gateway_grpc_port" if self.service == "gateway" else f"{self.service}_port")
        try:
            bound = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise ConfigError(setting, f"cannot listen on {host}:{port} ({exc}); is the port in use?") from None
        if bound == 0:
            raise ConfigError(setting, f"cannot listen on {host}:{port}; is the port in use?")
        self._addr = f"{host}:{port}"

    async def check_dependencies(self) -> bool:
        """Run every check once; returns True when every required dependency is usable."""
        ok = True
        for dep in self.dependencies:
            try:
                dep.detail = await asyncio.wait_for(dep.check(), timeout=3.0)
                dep.state = common_pb2.DEPENDENCY_STATE_OK
            except Exception as exc:  # noqa: BLE001
                dep.detail = f"{type(exc).__name__}: {exc}".strip()[:300]
                dep.state = common_pb2.DEPENDENCY_STATE_DOWN if dep.required else common_pb2.DEPENDENCY_STATE_DEGRADED
                ok = ok and not dep.required
        return ok

    async def mark_ready(self) -> None:
        """Startup hooks are done: serve, and keep watching the dependencies."""
        self._startup_done = True
        # Handlers must all be registered before start (reflection copies the names it is given).
        reflection.enable_server_reflection(self._service_names, self.server)
        await self._refresh()
        await self.server.start()
        log.info("listening", extra={"addr": self._addr})
        self._monitor = asyncio.create_task(self._watch())
        log.info("ready", extra={"ready": self.ready})

    @property
    def ready(self) -> bool:
        return self._startup_done and not self._stopping.is_set() and all(
            d.state == common_pb2.DEPENDENCY_STATE_OK for d in self.dependencies if d.required)

    async def _refresh(self) -> None:
        await self.check_dependencies()
        status = health_pb2.HealthCheckResponse.SERVING if self.ready else health_pb2.HealthCheckResponse.NOT_SERVING
        await self._set_all(status)

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=2.0)
            except TimeoutError:
                await self._refresh()

    async def _set_all(self, status: int) -> None:
        for name in ("", *self._service_names[3:]):
            await self.health.set(name, status)

    def info(self) -> common_pb2.NodeInfo:
        return common_pb2.NodeInfo(
            service=self.service, instance_id=self.instance_id, version=VERSION, pid=os.getpid(),
            grpc_addr=self.grpc_addr, started_at=self.started_at, ready=self.ready,
            dependencies=[common_pb2.DependencyStatus(name=d.name, state=d.state, required=d.required, detail=d.detail)
                          for d in self.dependencies],
            methods=[s.to_proto(m) for m, s in sorted(self.metrics.items())],
        )

    def request_stop(self) -> None:
        self._stopping.set()

    async def serve_until_stopped(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self._stopping.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        if self._shutdown_started:
            return
        self._shutdown_started = True
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._stopping.set()
        log.info("stopping", extra={"grace_s": self.settings.rpc.grace_s})
        # 1. Stop accepting: no longer healthy, no longer found.
        await self.health.enter_graceful_shutdown()
        await _bounded("stop accepting", self._stop_accepting, STOP_ACCEPTING_S)
        # 2. Drain gRPC, HTTP and data-plane streams together, under one deadline.
        left = max(0.0, self.settings.rpc.grace_s - (loop.time() - started))
        results = await asyncio.gather(self.server.stop(left), *(fn(left) for fn in self._drains), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.warning("drain failed: %s", result)
        if self._monitor:
            self._monitor.cancel()
        # 3. Close dependencies.
        await _bounded("close", list(reversed(self._cleanups)), CLOSE_S)
        log.info("stopped", extra={"took_s": round(loop.time() - started, 2)})


async def _bounded(stage: str, hooks: list[Callable[[], Awaitable[None]]], limit_s: float) -> None:
    """Run hooks one after another, all within limit_s; one that fails or runs out of time is logged and left."""
    deadline = asyncio.get_running_loop().time() + limit_s
    for fn in hooks:
        try:
            await asyncio.wait_for(fn(), timeout=max(0.05, deadline - asyncio.get_running_loop().time()))
        except TimeoutError:
            log.warning("%s: %s did not finish in time", stage, getattr(fn, "__qualname__", fn))
        except Exception:
            log.exception("%s failed", stage)
