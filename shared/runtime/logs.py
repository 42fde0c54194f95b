"""Structured logging with a request id that follows a request across hops.

``request_id`` is a context variable: the gRPC server interceptor sets it from
the ``x-request-id`` metadata (or makes one), the gRPC client interceptor and
the NATS publisher copy it onward, and every log record carries it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid

REQUEST_ID_HEADER = "x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

_identity: dict[str, str] = {}


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def current_request_id() -> str:
    """The request id of the work in progress, making one if there is none."""
    rid = request_id.get()
    if not rid:
        rid = new_request_id()
        request_id.set(rid)
    return rid


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, instance, request_id, logger, msg, extras."""

    _skip = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            **_identity,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            out["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = request_id.get()
        head = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname[:4]} {_identity.get('service', '-')}"
        line = f"{head} [{rid}] {record.getMessage()}" if rid else f"{head} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(level: str = "info", fmt: str = "json", *, service: str = "", instance: str = "") -> None:
    """Configure the root logger once per process (later calls replace the handler)."""
    _identity.clear()
    if service:
        _identity["service"] = service
    if instance:
        _identity["instance"] = instance
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("nats", "httpx", "sentence_transformers", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def fmt_bytes(n: int) -> str:
    """A byte count for people: "1.50 GiB", "12.00 MiB", "512 B"."""
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"
