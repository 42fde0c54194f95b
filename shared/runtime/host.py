"""The process around a service's gRPC server, written once for every service.

:class:`ServiceHost` binds the port (SO_REUSEPORT, so pm2 instances of a
service share it), registers grpc.health.v1, reflection and the Node service,
and serves every handler through :mod:`shared.runtime.rpc`'s interceptor. Background work runs through
``spawn`` (a task) and ``every`` (a periodic task); both stop with the process.

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
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.errors import ConfigError
from shared.gen.tessera.v1 import common_pb2, common_pb2_grpc
from shared.runtime.config import Settings, env_name
from shared.runtime.rpc import CallerKeys, MethodStats, ServerInterceptor, checked_keys
from shared.runtime.tasks import finish_by

log = logging.getLogger("tessera.rpc")

VERSION = "0.1.0"
#: Bounds of the shutdown's first and last stages (the middle one is grace_s).
STOP_ACCEPTING_S = 1.0
CLOSE_S = 2.5
#: How long shutdown waits for a periodic task's round in progress.
PERIODIC_STOP_S = 5.0


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
        self._tasks: dict[asyncio.Task[Any], float] = {}
        buckets = tuple(float(b) for b in settings.rpc.metrics_buckets_ms)
        self.server = grpc.aio.server(
            interceptors=[ServerInterceptor(self.metrics, buckets, CallerKeys(checked_keys(settings)))],
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

    @property
    def stopping(self) -> asyncio.Event:
        """Set when shutdown starts: background loops end their round and return."""
        return self._stopping

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "", stop_within: float = float("inf")) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; shutdown waits for it beside the gRPC drain (at most ``stop_within``
        seconds, and never past the shutdown deadline), then cancels it. A task that fails is logged."""
        task = asyncio.create_task(coro, name=name or None)
        self._tasks[task] = stop_within
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task %s failed", task.get_name(), exc_info=exc)

    def every(self, interval_s: float, fn: Callable[[], Awaitable[object]], *, name: str, first_s: float | None = None) -> None:
        """Run ``fn`` every ``interval_s`` seconds (the first time after ``first_s``, default one interval) until
        shutdown. A round that raises is logged and the next round tries again."""
        async def loop() -> None:
            wait = interval_s if first_s is None else first_s
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=max(0.0, wait))
                    return
                wait = interval_s
                try:
                    await fn()
                except Exception as exc:  # noqa: BLE001 — boundary: one round of a periodic task; logged, retried next round
                    log.warning("%s failed (%s: %s); retrying in %.0f s", name, type(exc).__name__, exc, interval_s)

        self.spawn(loop(), name=name, stop_within=PERIODIC_STOP_S)

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
            except Exception as exc:  # noqa: BLE001 — boundary: a dependency's health check; any failure marks it down with the reason
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
        limits = {limit for limit in self._tasks.values()}
        spawned = [finish_by([t for t, lim in self._tasks.items() if lim == limit], min(left, limit)) for limit in limits]
        results = await asyncio.gather(self.server.stop(left), *(fn(left) for fn in self._drains), *spawned, return_exceptions=True)
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
        except Exception:  # boundary: one shutdown hook; logged, the next hook runs
            log.exception("%s failed", stage)
