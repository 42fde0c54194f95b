import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DependencyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEPENDENCY_STATE_UNSPECIFIED: _ClassVar[DependencyState]
    DEPENDENCY_STATE_OK: _ClassVar[DependencyState]
    DEPENDENCY_STATE_DEGRADED: _ClassVar[DependencyState]
    DEPENDENCY_STATE_DOWN: _ClassVar[DependencyState]
DEPENDENCY_STATE_UNSPECIFIED: DependencyState
DEPENDENCY_STATE_OK: DependencyState
DEPENDENCY_STATE_DEGRADED: DependencyState
DEPENDENCY_STATE_DOWN: DependencyState

class StreamTicket(_message.Message):
    __slots__ = ("quic_addr", "token", "expires_at", "alpn")
    QUIC_ADDR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ALPN_FIELD_NUMBER: _ClassVar[int]
    quic_addr: str
    token: bytes
    expires_at: _timestamp_pb2.Timestamp
    alpn: str
    def __init__(self, quic_addr: _Optional[str] = ..., token: _Optional[bytes] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., alpn: _Optional[str] = ...) -> None: ...

class StreamOpen(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: bytes
    def __init__(self, token: _Optional[bytes] = ...) -> None: ...

class StreamReply(_message.Message):
    __slots__ = ("code", "message", "frame_type")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FRAME_TYPE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    frame_type: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., frame_type: _Optional[str] = ...) -> None: ...

class SourceRef(_message.Message):
    __slots__ = ("chunk_id", "document_id", "title", "path", "line_start", "line_end", "char_start", "char_end", "heading_path")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LINE_START_FIELD_NUMBER: _ClassVar[int]
    LINE_END_FIELD_NUMBER: _ClassVar[int]
    CHAR_START_FIELD_NUMBER: _ClassVar[int]
    CHAR_END_FIELD_NUMBER: _ClassVar[int]
    HEADING_PATH_FIELD_NUMBER: _ClassVar[int]
    chunk_id: str
    document_id: str
    title: str
    path: str
    line_start: int
    line_end: int
    char_start: int
    char_end: int
    heading_path: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, chunk_id: _Optional[str] = ..., document_id: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., line_start: _Optional[int] = ..., line_end: _Optional[int] = ..., char_start: _Optional[int] = ..., char_end: _Optional[int] = ..., heading_path: _Optional[_Iterable[str]] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("name", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class Enrichment(_message.Message):
    __slots__ = ("kind", "title", "summary", "tags", "entities", "state", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    title: str
    summary: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    state: str
    reason: str
    def __init__(self, kind: _Optional[str] = ..., title: _Optional[str] = ..., summary: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("project", "types", "tags", "created_after", "created_before", "updated_after", "updated_before")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    project: str
    types: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    updated_after: _timestamp_pb2.Timestamp
    updated_before: _timestamp_pb2.Timestamp
    def __init__(self, project: _Optional[str] = ..., types: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DependencyStatus(_message.Message):
    __slots__ = ("name", "state", "required", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: DependencyState
    required: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[DependencyState, str]] = ..., required: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class MethodMetrics(_message.Message):
    __slots__ = ("method", "calls", "codes", "latency_ms_sum", "latency_ms_max", "latency_le_ms", "latency_le_counts", "in_flight")
    class CodesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    CODES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_SUM_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_MAX_FIELD_NUMBER: _ClassVar[int]
    LATENCY_LE_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_LE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    method: str
    calls: int
    codes: _containers.ScalarMap[str, int]
    latency_ms_sum: float
    latency_ms_max: float
    latency_le_ms: _containers.RepeatedScalarFieldContainer[float]
    latency_le_counts: _containers.RepeatedScalarFieldContainer[int]
    in_flight: int
    def __init__(self, method: _Optional[str] = ..., calls: _Optional[int] = ..., codes: _Optional[_Mapping[str, int]] = ..., latency_ms_sum: _Optional[float] = ..., latency_ms_max: _Optional[float] = ..., latency_le_ms: _Optional[_Iterable[float]] = ..., latency_le_counts: _Optional[_Iterable[int]] = ..., in_flight: _Optional[int] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("service", "instance_id", "version", "pid", "grpc_addr", "started_at", "ready", "dependencies", "methods")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    service: str
    instance_id: str
    version: str
    pid: int
    grpc_addr: str
    started_at: _timestamp_pb2.Timestamp
    ready: bool
    dependencies: _containers.RepeatedCompositeFieldContainer[DependencyStatus]
    methods: _containers.RepeatedCompositeFieldContainer[MethodMetrics]
    def __init__(self, service: _Optional[str] = ..., instance_id: _Optional[str] = ..., version: _Optional[str] = ..., pid: _Optional[int] = ..., grpc_addr: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ready: _Optional[bool] = ..., dependencies: _Optional[_Iterable[_Union[DependencyStatus, _Mapping]]] = ..., methods: _Optional[_Iterable[_Union[MethodMetrics, _Mapping]]] = ...) -> None: ...
