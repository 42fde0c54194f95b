"""OpenTelemetry traces across the mesh: gateway → chat → search → embed, and the NATS hops.

The W3C ``traceparent`` travels in gRPC metadata (the client interceptor injects it, the server
interceptor opens a span under it) and in NATS message headers. Each span carries the request id
(``tessera.request_id``), so ``tessera trace REQUEST_ID`` finds a request's whole tree.

Exporters (``TESSERA_TRACES``): ``file`` writes one JSON object per span to
``<data_dir>/traces/<service>.jsonl``; ``otlp`` sends OTLP/HTTP to ``TESSERA_OTLP_ENDPOINT``
(setting the endpoint selects it); ``off`` records nothing.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from shared.runtime.config import Settings
from shared.runtime.logs import request_id

REQUEST_ID_ATTR = "tessera.request_id"
_provider: TracerProvider | None = None


class JsonLinesExporter(SpanExporter):
    """Spans as JSON lines in one file per process; appends are serialized by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_json(s)) for s in spans]
        with self._lock, self.path.open("a") as out:
            out.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_json(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    assert ctx is not None
    return {"trace_id": f"{ctx.trace_id:032x}", "span_id": f"{ctx.span_id:016x}",
            "parent_id": f"{s.parent.span_id:016x}" if s.parent is not None else None, "name": s.name,
            "service": s.resource.attributes.get("service.name", ""), "start_ns": s.start_time, "end_ns": s.end_time,
            "status": s.status.status_code.name, "attributes": {k: v if isinstance(v, str | int | float | bool) else str(v)
                                                               for k, v in (s.attributes or {}).items()}}


def setup(settings: Settings, service: str) -> None:
    """The process's tracer provider, from settings (once per process)."""
    global _provider
    mode = "otlp" if settings.core.otlp_endpoint else settings.core.traces
    if mode == "off" or _provider is not None:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service, "service.instance.id": str(os.getpid())}),
                              sampler=ParentBased(TraceIdRatioBased(settings.core.trace_ratio)))
    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=settings.core.otlp_endpoint or None)
    else:
        exporter = JsonLinesExporter(trace_dir(settings) / f"{service}.jsonl")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=300))
    trace.set_tracer_provider(provider)
    _provider = provider


def flush() -> None:
    if _provider is not None:
        _provider.force_flush(2000)


def shutdown() -> None:
    if _provider is not None:
        _provider.shutdown()


def trace_dir(settings: Settings) -> Path:
    return settings.path("traces")


def tracer() -> trace.Tracer:
    return trace.get_tracer("tessera")


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context (traceparent, tracestate) to headers or metadata."""
    propagate.inject(carrier)
    return carrier


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(dict(carrier))


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: otel_context.Context | None = None,
         **attributes: Any) -> Iterator[Span]:
    """A span that is current inside the block, tagged with the request id."""
    rid = request_id.get()
    attrs = {k: v for k, v in attributes.items() if v is not None}
    if rid:
        attrs[REQUEST_ID_ATTR] = rid
    with tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attrs) as current:
        yield current


def start(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: otel_context.Context | None = None,
          start_ns: int | None = None, **attributes: str | int | float | bool | None) -> Span:
    """A span the caller ends (``end(span)``), for work whose start and end are not one block."""
    attrs = {k: v for k, v in attributes.items() if v is not None}
    rid = request_id.get()
    if rid:
        attrs[REQUEST_ID_ATTR] = rid
    return tracer().start_span(name, context=parent, kind=kind, attributes=attrs, start_time=start_ns)


def fail(current: Span, message: str) -> None:
    current.set_status(Status(StatusCode.ERROR, message))
