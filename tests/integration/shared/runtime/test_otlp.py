"""TESSERA_OTLP_ENDPOINT: a gateway started with it sends its spans over OTLP/HTTP (protobuf) to that endpoint.

The receiver is an OTLP/HTTP trace endpoint started in the test: it takes POST /v1/traces, decodes the body with the
OpenTelemetry protocol's own messages (ExportTraceServiceRequest), answers as a collector does, and keeps what it got.
The gateway is a second one, on its own ports, in the session's mesh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from helpers import ADMIN, Launcher, ServiceProcess, service_ports, wait_serving
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse

from shared.runtime.config import Settings, load_settings, settings_env
from shared.runtime.tracing import REQUEST_ID_ATTR


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.spans: list[dict[str, Any]] = []
        self.content_types: set[str] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            self.send_error(404)
            return
        request = ExportTraceServiceRequest.FromString(body)
        self.server.content_types.add(self.headers.get("Content-Type", ""))
        for rs in request.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for span in ss.spans:
                    self.server.spans.append({"service": resource.get("service.name", ""), "name": span.name,
                                              "trace_id": span.trace_id.hex(),
                                              "attributes": {a.key: a.value.string_value for a in span.attributes}})
        out = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_gateway_exports_its_spans_to_the_otlp_endpoint(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher,
                                                          receiver: Receiver) -> None:
    ports = service_ports()
    env = {**settings_env(infra), "TESSERA_OTLP_ENDPOINT": receiver.endpoint,
           **{k: ports[k] for k in ("TESSERA_GATEWAY_PORT", "TESSERA_GATEWAY_GRPC_PORT", "TESSERA_GATEWAY_TLS_PORT")}}
    settings = load_settings(env)
    gateway = launcher.start("gateway", settings)
    try:
        wait_serving(settings, [gateway])
        r = httpx.get(f"http://127.0.0.1:{settings.gateway_port}/api/v1/library", headers=ADMIN, timeout=30)
        assert r.status_code == 200, r.text
        rid = r.headers["x-request-id"]
        end = time.monotonic() + 15  # the batch processor exports every 300 ms
        while time.monotonic() < end and not any(s["attributes"].get(REQUEST_ID_ATTR) == rid for s in receiver.spans):
            time.sleep(0.1)
    finally:
        gateway.stop()
    mine = [s for s in receiver.spans if s["attributes"].get(REQUEST_ID_ATTR) == rid]
    assert mine, f"no span of request {rid} reached the receiver; it got {[(s['service'], s['name']) for s in receiver.spans][:10]}"
    assert {s["service"] for s in mine} == {"gateway"} and "HTTP GET /api/v1/library" in {s["name"] for s in mine}, mine
    assert len({s["trace_id"] for s in mine}) == 1
    assert receiver.content_types == {"application/x-protobuf"}
