"""`tessera load`: a gRPC load generator driven by .proto files at run time (ghz's interface where it applies).

    tessera load --proto protos/tessera/v1/search.proto --call tessera.v1.SearchService/Search \\
        -d '{"query": "kettle"}' -c 16 -z 30s 127.0.0.1:8473

The .proto is compiled when the command runs (grpc_tools' protoc into a descriptor
set); requests are built from the method's input descriptor with protobuf's JSON
mapping, so any unary or server-streaming method of any proto can be driven with no
code per method. A JSON array of requests is sent round-robin. Load is bounded: a
total (-n, at most MAX_TOTAL) or a duration (-z, at most MAX_DURATION_S), and goes
only to the address given.

The report: count, RPS, latency p50/p90/p95/p99/max, a latency histogram, a count
per status code and per error message; for server-streaming methods also time to
first message and messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor

from shared.errors import TesseraError

MAX_TOTAL = 1_000_000
MAX_DURATION_S = 3600.0
HISTOGRAM_BUCKETS = 10


class LoadError(TesseraError):
    """The load run cannot start: a bad proto, call, request or option; the message says which."""


@dataclass(frozen=True)
class Target:
    method: MethodDescriptor
    path: str  # /pkg.Service/Method
    requests: list[bytes]  # serialized, sent round-robin

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)


def compile_proto(proto: Path, import_paths: list[Path]) -> descriptor_pool.DescriptorPool:
    """Compile a .proto (and its imports) into a fresh descriptor pool."""
    import grpc_tools

    if not proto.is_file():
        raise LoadError(f"load: {proto} does not exist")
    include = Path(grpc_tools.__file__).parent / "_proto"
    paths = [*import_paths, proto.parent]
    for parent in proto.resolve().parents:  # a proto under protos/ imports "tessera/v1/..." from protos/
        if (parent / "tessera").is_dir() or parent.name == "protos":
            paths.append(parent)
            break
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_out={out}", "--include_imports", f"-I{include}",
                *(f"-I{p}" for p in paths), str(proto.resolve())]
        run = subprocess.run(args, capture_output=True, text=True)
        if run.returncode != 0:
            raise LoadError(f"load: protoc could not compile {proto}: {run.stderr.strip()[-500:]}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    return pool


def find_method(pool: descriptor_pool.DescriptorPool, call: str) -> MethodDescriptor:
    """``pkg.Service/Method`` or ``pkg.Service.Method``."""
    match = re.fullmatch(r"([\w.]+)[/.](\w+)", call)
    if not match:
        raise LoadError(f"load: --call {call!r} is not pkg.Service/Method")
    service_name, method_name = match.groups()
    try:
        service = pool.FindServiceByName(service_name)
    except KeyError:
        raise LoadError(f"load: the proto has no service {service_name!r}") from None
    method = service.methods_by_name.get(method_name)
    if method is None:
        raise LoadError(f"load: {service_name} has no method {method_name!r}; it has {', '.join(sorted(service.methods_by_name))}")
    if method.client_streaming:
        raise LoadError(f"load: {call} takes a client stream; only unary and server-streaming methods are supported")
    return method


def build_requests(method: MethodDescriptor, data: Any) -> list[bytes]:
    cls = message_factory.GetMessageClass(method.input_type)
    items = data if isinstance(data, list) else [data]
    if not items:
        raise LoadError("load: the request data is an empty list")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise LoadError(f"load: request {i} is not a JSON object")
        try:
            out.append(json_format.ParseDict(item, cls()).SerializeToString())
        except json_format.ParseError as exc:
            raise LoadError(f"load: request {i} does not fit {method.input_type.full_name}: {exc}") from None
    return out


def make_target(proto: Path, import_paths: list[Path], call: str, data: Any) -> Target:
    method = find_method(compile_proto(proto, import_paths), call)
    return Target(method, f"/{method.containing_service.full_name}/{method.name}", build_requests(method, data))


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        raise LoadError(f"load: {text!r} is not a duration (e.g. 500ms, 30s, 2m)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)  # seconds, every finished call
    first_message: list[float] = field(default_factory=list)  # streams: seconds to the first message
    messages: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0


def _identity(b: bytes) -> bytes:
    return b


async def run_load(target: Target, address: str, *, concurrency: int, total: int | None = None, duration: float | None = None,
                   rps: float | None = None, connections: int = 1, timeout: float = 20.0,
                   metadata: list[tuple[str, str]] | None = None) -> Results:
    """Drive ``target`` at ``address``: ``concurrency`` workers over ``connections`` channels until total or duration."""
    if total is None and duration is None:
        total = 200
    if total is not None and not 1 <= total <= MAX_TOTAL:
        raise LoadError(f"load: -n must be between 1 and {MAX_TOTAL}")
    if duration is not None and not 0 < duration <= MAX_DURATION_S:
        raise LoadError(f"load: -z must be above 0 and at most {MAX_DURATION_S:.0f}s")
    if concurrency < 1 or connections < 1 or (rps is not None and rps <= 0):
        raise LoadError("load: -c, --connections and --rps must be positive")
    # one subchannel pool per channel: otherwise grpc shares one TCP connection among them
    channels = [grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.channel_id", i)])
                for i in range(min(connections, concurrency))]
    calls = [ch.unary_stream(target.path, request_serializer=_identity, response_deserializer=_identity) if target.streaming
             else ch.unary_unary(target.path, request_serializer=_identity, response_deserializer=_identity) for ch in channels]
    results = Results()
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration if duration is not None else None
    issued = 0

    def next_index() -> int | None:
        nonlocal issued
        if (total is not None and issued >= total) or (end is not None and loop.time() >= end):
            return None
        issued += 1
        return issued - 1

    async def worker(w: int) -> None:
        call = calls[w % len(calls)]
        while (i := next_index()) is not None:
            if rps is not None:
                due = start + i / rps
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if end is not None and loop.time() >= end:
                    return
            await _one_call(call, target, target.requests[i % len(target.requests)], timeout, metadata, results)

    try:
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
    finally:
        results.elapsed = loop.time() - start
        for ch in channels:
            await ch.close()
    return results


async def _one_call(call: Any, target: Target, request: bytes, timeout: float, metadata: list[tuple[str, str]] | None,
                    results: Results) -> None:
    """One request, its status and latency (and, streamed, its first message and message count) in ``results``."""
    t0 = time.perf_counter()
    try:
        if target.streaming:
            first = True
            async for _ in call(request, timeout=timeout, metadata=metadata):
                if first:
                    results.first_message.append(time.perf_counter() - t0)
                    first = False
                results.messages += 1
        else:
            await call(request, timeout=timeout, metadata=metadata)
        results.codes["OK"] += 1
    except grpc.aio.AioRpcError as exc:
        results.codes[exc.code().name] += 1
        results.errors[f"{exc.code().name}: {exc.details()}"] += 1
    results.latencies.append(time.perf_counter() - t0)


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def summarize(results: Results, target: Target | None = None) -> dict[str, Any]:
    lat = sorted(results.latencies)
    ms = 1000.0
    count = len(lat)
    summary: dict[str, Any] = {
        "call": target.path if target else "",
        "count": count,
        "total_s": round(results.elapsed, 3),
        "rps": round(count / results.elapsed, 2) if results.elapsed else 0.0,
        "latency_ms": {"mean": round(sum(lat) / count * ms, 3) if count else 0.0, "min": round(lat[0] * ms, 3) if lat else 0.0,
                       **{f"p{q}": round(_pct(lat, q / 100) * ms, 3) for q in (50, 90, 95, 99)},
                       "max": round(lat[-1] * ms, 3) if lat else 0.0},
        "histogram": histogram(lat),
        "status_codes": dict(results.codes),
        "errors": dict(results.errors.most_common(10)),
    }
    if target is not None and target.streaming:
        first = sorted(results.first_message)
        summary["stream"] = {"messages": results.messages,
                             "messages_per_s": round(results.messages / results.elapsed, 2) if results.elapsed else 0.0,
                             "first_message_ms": {f"p{q}": round(_pct(first, q / 100) * ms, 3) for q in (50, 90, 99)}}
    return summary


def histogram(lat: list[float]) -> list[dict[str, float]]:
    """ghz's histogram: equal-width buckets from the fastest to the slowest call, each with its count."""
    if not lat:
        return []
    lo, hi = lat[0], lat[-1]
    width = (hi - lo) / HISTOGRAM_BUCKETS or 1e-9
    counts = [0] * HISTOGRAM_BUCKETS
    for v in lat:
        counts[min(HISTOGRAM_BUCKETS - 1, int((v - lo) / width))] += 1
    return [{"le_ms": round((lo + (i + 1) * width) * 1000, 3), "count": c} for i, c in enumerate(counts)]


def render_text(s: dict[str, Any]) -> str:
    lat = s["latency_ms"]
    lines = ["Summary:", f"  Call:       {s['call']}", f"  Count:      {s['count']}", f"  Total:      {s['total_s']:.2f} s",
             f"  Requests/s: {s['rps']:.2f}", f"  Fastest:    {lat['min']:.2f} ms", f"  Slowest:    {lat['max']:.2f} ms",
             f"  Average:    {lat['mean']:.2f} ms", "", "Latency distribution:"]
    lines += [f"  {q}% in {lat['p' + q]:.2f} ms" for q in ("50", "90", "95", "99")]
    if s.get("stream"):
        st = s["stream"]
        lines += ["", f"Stream: {st['messages']} messages ({st['messages_per_s']:.1f}/s), first message p50 "
                      f"{st['first_message_ms']['p50']:.2f} ms, p99 {st['first_message_ms']['p99']:.2f} ms"]
    lines += ["", "Histogram (ms):"]
    peak = max((b["count"] for b in s["histogram"]), default=1) or 1
    lines += [f"  {b['le_ms']:10.3f} [{b['count']:6d}] |{'∎' * round(40 * b['count'] / peak)}" for b in s["histogram"]]
    lines += ["", "Status code distribution:"] + [f"  [{code}] {n} responses" for code, n in sorted(s["status_codes"].items())]
    if s["errors"]:
        lines += ["", "Error distribution:"] + [f"  [{n}] {msg}" for msg, n in s["errors"].items()]
    return "\n".join(lines)


def load_data(args: argparse.Namespace) -> Any:
    if args.data is not None and args.data_file is not None:
        raise LoadError("load: give -d or --data-file, not both")
    if args.data_file is not None:
        try:
            text = Path(args.data_file).read_text()
        except OSError as exc:
            raise LoadError(f"load: cannot read {args.data_file}: {exc.strerror}") from None
    else:
        text = args.data if args.data is not None else "{}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"load: the request data is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


def cmd_load(settings: Any, args: argparse.Namespace) -> int:
    target = make_target(Path(args.proto), [Path(p) for p in args.import_paths], args.call, load_data(args))
    metadata = []
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep:
            raise LoadError(f"load: metadata {item!r} is not key=value")
        metadata.append((key.lower(), value))
    if not any(k == "authorization" for k, _ in metadata):  # the mesh's key, read as every client reads it
        from shared.runtime.channels import key_metadata

        metadata.append(key_metadata(settings))
    results = asyncio.run(run_load(target, args.address, concurrency=args.concurrency, total=args.total,
                                   duration=parse_duration(args.duration) if args.duration else None, rps=args.rps,
                                   connections=args.connections, timeout=parse_duration(args.timeout), metadata=metadata or None))
    summary = summarize(results, target)
    print(json.dumps(summary) if args.format == "json" else render_text(summary))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("load", help="load-test any unary or server-streaming gRPC method from its .proto (ghz-like)")
    p.add_argument("address", metavar="HOST:PORT")
    p.add_argument("--proto", required=True, help="the .proto file that defines the service")
    p.add_argument("-i", "--import-paths", action="append", default=[], help="extra import path for the proto (repeatable)")
    p.add_argument("--call", required=True, help="pkg.Service/Method")
    p.add_argument("-d", "--data", help="request as JSON (an array: sent round-robin)")
    p.add_argument("-D", "--data-file", help="file holding the JSON request(s)")
    p.add_argument("-c", "--concurrency", type=int, default=50, help="concurrent workers (default 50)")
    p.add_argument("-n", "--total", type=int, help=f"requests to send (default 200; at most {MAX_TOTAL})")
    p.add_argument("-z", "--duration", help=f"run for this long instead (e.g. 30s; at most {MAX_DURATION_S:.0f}s)")
    p.add_argument("--rps", type=float, help="rate limit, requests per second across all workers")
    p.add_argument("--connections", type=int, default=1, help="gRPC connections the workers share (default 1)")
    p.add_argument("-t", "--timeout", default="20s", help="per-call timeout (default 20s)")
    p.add_argument("-m", "--metadata", action="append", default=[], help="key=value sent with every call (repeatable)")
    p.add_argument("-O", "--format", choices=("text", "json"), default="text")
    p.set_defaults(fn=cmd_load)
