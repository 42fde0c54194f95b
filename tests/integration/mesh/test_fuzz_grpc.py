"""Bad input across the whole gRPC surface: requests generated from the proto descriptors for every method of
every service, sent to the session's real mesh.

Random field values, huge strings, path and SQL lookalikes, NUL characters, unknown enum numbers, extreme
integers and floats, nested messages, and raw bytes with invalid UTF-8 in string fields. Every call must end OK
or with one of the statuses ``ALLOWED`` lists for its method, with a sentence: never INTERNAL, UNKNOWN or
DEADLINE_EXCEEDED (a call that outlives its generous deadline is a hang), never a traceback or an exception class.
No process restarts, and each one's memory is back near its baseline afterwards. The inputs follow the run's
TEST_SEED (printed in the header and beside a failure), so a failure is repeated by setting it.

It captures and ingests random notes into the session's index; they are deleted (through ingest, their owner) when
the module ends, so the other tests never see them, whatever the order the tests run in.
Bounded: ``EXAMPLES`` requests per method (fewer for chat, whose calls run the model).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from google.protobuf import message as pb_message
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from helpers import ServiceProcess, key_md
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from seeds import SEED

from shared.gen.tessera.v1 import chat_pb2, common_pb2, embed_pb2, gateway_pb2, ingest_pb2, ingest_pb2_grpc, scheduler_pb2, search_pb2, tensor_pb2
from shared.runtime import secrets
from shared.runtime.config import Settings

EXAMPLES = 25
#: A malformed request is refused at once and a valid one served in well under this; reaching it is a hang.
CALL_TIMEOUT_S = 30.0
Code = grpc.StatusCode
#: What malformed input may get, besides OK, per method. Every method may refuse with INVALID_ARGUMENT.
NOT_THERE = {Code.NOT_FOUND}
ALLOWED: dict[str, set[grpc.StatusCode]] = {
    "IngestService.IngestDocument": {Code.RESOURCE_EXHAUSTED, Code.FAILED_PRECONDITION},
    "IngestService.IngestPath": NOT_THERE | {Code.PERMISSION_DENIED, Code.FAILED_PRECONDITION},
    "IngestService.GetJob": NOT_THERE, "IngestService.WatchJob": NOT_THERE,
    "IngestService.GetDocument": NOT_THERE, "IngestService.DeleteDocument": NOT_THERE,
    "IngestService.ReadDocument": NOT_THERE | {Code.PERMISSION_DENIED}, "IngestService.ListDocuments": NOT_THERE,
    "IngestService.GetLibrary": NOT_THERE, "IngestService.ListJobs": NOT_THERE, "IngestService.GetWatch": NOT_THERE,
    "IngestService.SetEnrichment": NOT_THERE, "IngestService.EnrichDeferred": NOT_THERE,
    "EmbedService.Embed": NOT_THERE | {Code.RESOURCE_EXHAUSTED}, "EmbedService.GetModel": NOT_THERE,
    "SearchService.Search": NOT_THERE, "SearchService.Related": NOT_THERE, "SearchService.Map": NOT_THERE,
    "SearchService.Stale": NOT_THERE, "SearchService.Review": NOT_THERE | {Code.FAILED_PRECONDITION},
    "ChatService.Enrich": NOT_THERE | {Code.RESOURCE_EXHAUSTED}, "ChatService.Chat": NOT_THERE | {Code.RESOURCE_EXHAUSTED},
    "ChatService.StartChat": NOT_THERE | {Code.RESOURCE_EXHAUSTED}, "ChatService.GetConversation": NOT_THERE,
    "ChatService.ListConversations": NOT_THERE, "ChatService.GetModel": NOT_THERE, "ChatService.RenameConversation": NOT_THERE,
    "ChatService.DeleteConversation": NOT_THERE | {Code.FAILED_PRECONDITION},
    "TensorService.Resample": {Code.RESOURCE_EXHAUSTED}, "TensorService.StartResample": {Code.RESOURCE_EXHAUSTED},
    "SchedulerService.Acquire": {Code.RESOURCE_EXHAUSTED}, "SchedulerService.Renew": NOT_THERE,
    "SchedulerService.Release": NOT_THERE, "SchedulerService.Status": set(),
    "GatewayService.CaptureNote": {Code.RESOURCE_EXHAUSTED}, "GatewayService.EditNote": NOT_THERE | {Code.FAILED_PRECONDITION},
    "NodeService.GetInfo": set(),
}
SURFACE: list[tuple[str, ServiceDescriptor]] = [
    ("ingest", ingest_pb2.DESCRIPTOR.services_by_name["IngestService"]),
    ("embed", embed_pb2.DESCRIPTOR.services_by_name["EmbedService"]),
    ("search", search_pb2.DESCRIPTOR.services_by_name["SearchService"]),
    ("chat", chat_pb2.DESCRIPTOR.services_by_name["ChatService"]),
    ("tensor", tensor_pb2.DESCRIPTOR.services_by_name["TensorService"]),
    ("scheduler", scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"]),
    ("gateway", gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"]),
    ("search", common_pb2.DESCRIPTOR.services_by_name["NodeService"]),
]
METHODS = [(service, svc, m) for service, svc in SURFACE for m in svc.methods]
NASTY = ["", " ", "\x00", "../../../etc/passwd", "/etc/shadow", "' OR 1=1; --", "*", "%", "\\", "é" * 3000, "x" * 70_000,
         "\u202e\ufeff\U0001f600", "00000000-0000-0000-0000-000000000000", "nats://127.0.0.1:1", "{{7*7}}", "\n" * 500]
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Mostly small numbers, sometimes the extremes."""
    return st.one_of(st.integers(max(lo, -3), min(hi, 70)), st.sampled_from([lo, hi, 0, 1]), st.integers(lo, hi))


def scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=40), st.sampled_from(NASTY))
    if f.type == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(b"\xff" * 200_000))
    if f.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if f.type == FieldDescriptor.TYPE_ENUM:
        return st.one_of(st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-3, 1000))
    if f.type == FieldDescriptor.TYPE_FLOAT:
        return st.floats(width=32)
    if f.type == FieldDescriptor.TYPE_DOUBLE:
        return st.floats()
    return ints(*INT_RANGES[f.type])


def message(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments for ``desc``'s class: any subset of its fields, nested messages to depth 3."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if f.message_type.GetOptions().map_entry:
                key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
                if value.type == FieldDescriptor.TYPE_MESSAGE:
                    continue
                optional[f.name] = st.dictionaries(scalar(key), scalar(value), max_size=4)
                continue
            inner = message(f.message_type, depth + 1).map(lambda kw, t=f.message_type: build(t, kw))
            optional[f.name] = st.lists(inner, max_size=3) if _repeated(f) else inner
        else:
            optional[f.name] = st.lists(scalar(f), max_size=5) if _repeated(f) else scalar(f)
    return st.fixed_dictionaries({}, optional=optional)


def _repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated) if hasattr(f, "is_repeated") else f.label == FieldDescriptor.LABEL_REPEATED


def build(desc: Descriptor, kwargs: dict[str, Any]) -> pb_message.Message:
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(desc)
    msg = cls()
    for name, value in kwargs.items():
        try:
            if isinstance(value, pb_message.Message):
                getattr(msg, name).CopyFrom(value)
            elif isinstance(value, list):
                target = getattr(msg, name)
                if value and isinstance(value[0], pb_message.Message):
                    for v in value:
                        target.add().CopyFrom(v)
                else:
                    target.extend(value)
            elif isinstance(value, dict):
                getattr(msg, name).update(value)
            else:
                setattr(msg, name, value)
        except (ValueError, TypeError):
            continue  # a value protobuf itself refuses (e.g. a Timestamp out of range): the client could not send it
    return msg


def wire(desc: Descriptor) -> st.SearchStrategy[bytes]:
    """A serialized request; sometimes with a string field carrying invalid UTF-8 (only raw bytes can)."""
    strings = [f.number for f in desc.fields if f.type == FieldDescriptor.TYPE_STRING and not _repeated(f)]

    def encode(kw: dict[str, Any], bad: bool, which: int) -> bytes:
        data = build(desc, kw).SerializeToString()
        if bad and strings:
            number = strings[which % len(strings)]
            payload = b"\xff\xfe\xc3(" * 3
            data += _varint(number << 3 | 2) + _varint(len(payload)) + payload
        return data

    return st.builds(encode, message(desc), st.booleans(), st.integers(0, 10))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def call(channel: grpc.Channel, svc: ServiceDescriptor, m: MethodDescriptor, requests: list[bytes],
         metadata: tuple[tuple[str, str], ...] = ()) -> grpc.StatusCode:
    """One call with the mesh's key in ``metadata`` (without it, every method answers UNAUTHENTICATED)."""
    path = f"/{svc.full_name}/{m.name}"
    ident = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
    try:
        if not m.client_streaming and not m.server_streaming:
            channel.unary_unary(path, **ident)(requests[0], timeout=CALL_TIMEOUT_S, metadata=metadata)
        elif not m.client_streaming:
            stream = channel.unary_stream(path, **ident)(requests[0], timeout=CALL_TIMEOUT_S, metadata=metadata)
            for _, _frame in zip(range(3), stream, strict=False):
                pass
            stream.cancel()
        elif not m.server_streaming:
            channel.stream_unary(path, **ident)(iter(requests), timeout=CALL_TIMEOUT_S, metadata=metadata)
        else:
            stream = channel.stream_stream(path, **ident)(iter(requests), timeout=CALL_TIMEOUT_S, metadata=metadata)
            for _, _frame in zip(range(3), stream, strict=False):
                pass
            stream.cancel()
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
        if code == Code.CANCELLED and m.server_streaming and "Locally cancelled" in details:
            return Code.OK  # our own cancel after three frames of a stream
        allowed = ALLOWED[f"{svc.name}.{m.name}"] | {Code.INVALID_ARGUMENT}
        assert code in allowed, f"{path}: {code.name} ({details}), not one of {sorted(c.name for c in allowed)}"
        assert details.strip() and "Traceback" not in details and "<class" not in details and "Unexpected" not in details, \
            f"{path}: {code.name}: {details!r}"
        return code
    return Code.OK


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@pytest.fixture(scope="module")
def baseline(infra: Settings, mesh: dict[str, ServiceProcess], home_notes: Path) -> Iterator[dict[str, tuple[int, int]]]:
    """Each service's pid and resident memory before the fuzzing; afterwards, the documents it made are deleted."""
    started = time.time()
    yield {s: (p.proc.pid, rss(p.proc.pid)) for s, p in mesh.items()}
    with psycopg.connect(secrets.database_url(infra, "runtime")) as conn:
        made = [str(r[0]) for r in conn.execute("SELECT id FROM documents WHERE updated_at >= to_timestamp(%s)", (started,))]
    with grpc.insecure_channel(infra.address("ingest")) as channel:
        delete = ingest_pb2_grpc.IngestServiceStub(channel).DeleteDocument
        for doc_id in made:
            delete(ingest_pb2.DeleteDocumentRequest(document_id=doc_id), timeout=10, metadata=key_md(infra))


@pytest.mark.parametrize(("service", "svc", "method"), METHODS, ids=[f"{s}:{svc.name}.{m.name}" for s, svc, m in METHODS])
def test_fuzz_method(infra: Settings, baseline: dict[str, tuple[int, int]], service: str, svc: ServiceDescriptor,
                     method: MethodDescriptor) -> None:
    examples = 4 if service == "chat" and method.name in ("Chat", "StartChat", "Enrich") else EXAMPLES
    seen: dict[str, int] = {}
    with grpc.insecure_channel(infra.address(service), options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as channel:

        @seed(SEED)
        @settings(max_examples=examples, deadline=None, derandomize=False, database=None, print_blob=False,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
        @given(st.lists(wire(method.input_type), min_size=1, max_size=3))
        def run(requests: list[bytes]) -> None:
            code = call(channel, svc, method, requests, key_md(infra))
            seen[code.name] = seen.get(code.name, 0) + 1

        run()
    print(f"{service} {method.name} (TEST_SEED={SEED}): {seen}")


def test_every_method_has_its_allowed_statuses() -> None:
    assert sorted(ALLOWED) == sorted(f"{svc.name}.{m.name}" for _, svc, m in METHODS)


def test_no_process_restarted_and_memory_came_back(mesh: dict[str, ServiceProcess], baseline: dict[str, tuple[int, int]]) -> None:
    gc.collect()
    time.sleep(2.0)  # cancelled calls finish unwinding
    for service, (pid, before) in baseline.items():
        proc = mesh[service].proc
        assert proc.poll() is None and proc.pid == pid, f"{service} exited ({proc.returncode}) during the fuzzing"
        after = rss(pid)
        assert after <= before * 1.5 + 96 * 1024**2, f"{service}: resident memory {before >> 20} MiB before, {after >> 20} MiB after"
        print(f"{service}: RSS {before >> 20} → {after >> 20} MiB")


def test_what_the_fuzzing_found_stays_fixed(infra: Settings, baseline: dict[str, tuple[int, int]]) -> None:
    """Each of these was INTERNAL (a Timestamp out of range, a NUL character reaching PostgreSQL or a path)."""
    cases = [
        ("search", search_pb2.DESCRIPTOR.services_by_name["SearchService"], "Search",
         search_pb2.SearchRequest(query="kettle", filters=common_pb2.Filters(created_after={"seconds": -(2**63)}))),
        ("search", search_pb2.DESCRIPTOR.services_by_name["SearchService"], "Search",
         search_pb2.SearchRequest(query="kettle", filters=common_pb2.Filters(updated_before={"seconds": 10, "nanos": -5}))),
        ("search", search_pb2.DESCRIPTOR.services_by_name["SearchService"], "Related", search_pb2.RelatedRequest(path="/a\x00b")),
        ("ingest", ingest_pb2.DESCRIPTOR.services_by_name["IngestService"], "ListDocuments", ingest_pb2.ListDocumentsRequest(project="p\x00")),
        ("ingest", ingest_pb2.DESCRIPTOR.services_by_name["IngestService"], "ReadDocument", ingest_pb2.ReadDocumentRequest(path="/x\x00y")),
        ("gateway", gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"], "CaptureNote",
         gateway_pb2.CaptureNoteRequest(title="a\x00b", body="text")),
    ]
    for service, svc, name, request in cases:
        with grpc.insecure_channel(infra.address(service)) as channel:
            code = call(channel, svc, svc.methods_by_name[name], [request.SerializeToString()], key_md(infra))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, code)
