import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Priority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRIORITY_UNSPECIFIED: _ClassVar[Priority]
    PRIORITY_INTERACTIVE: _ClassVar[Priority]
    PRIORITY_QUERY_EMBEDDING: _ClassVar[Priority]
    PRIORITY_BACKGROUND_EMBEDDING: _ClassVar[Priority]
    PRIORITY_TENSOR_BATCH: _ClassVar[Priority]
PRIORITY_UNSPECIFIED: Priority
PRIORITY_INTERACTIVE: Priority
PRIORITY_QUERY_EMBEDDING: Priority
PRIORITY_BACKGROUND_EMBEDDING: Priority
PRIORITY_TENSOR_BATCH: Priority

class AcquireRequest(_message.Message):
    __slots__ = ("service", "holder_id", "priority", "bytes", "max_wait_ms", "ttl_ms")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    service: str
    holder_id: str
    priority: Priority
    bytes: int
    max_wait_ms: int
    ttl_ms: int
    def __init__(self, service: _Optional[str] = ..., holder_id: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., bytes: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("lease_id", "device", "device_index", "bytes", "expires_at", "service", "holder_id", "priority")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_INDEX_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    device: str
    device_index: int
    bytes: int
    expires_at: _timestamp_pb2.Timestamp
    service: str
    holder_id: str
    priority: Priority
    def __init__(self, lease_id: _Optional[str] = ..., device: _Optional[str] = ..., device_index: _Optional[int] = ..., bytes: _Optional[int] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., service: _Optional[str] = ..., holder_id: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("lease_id", "ttl_ms")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ttl_ms: int
    def __init__(self, lease_id: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("lease_id",)
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    def __init__(self, lease_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("index", "name", "total_bytes", "free_bytes", "granted_bytes", "utilization", "source")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    GRANTED_BYTES_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    granted_bytes: int
    utilization: float
    source: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., total_bytes: _Optional[int] = ..., free_bytes: _Optional[int] = ..., granted_bytes: _Optional[int] = ..., utilization: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class Waiter(_message.Message):
    __slots__ = ("service", "priority", "bytes", "waited_ms", "effective_priority")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    WAITED_MS_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    service: str
    priority: Priority
    bytes: int
    waited_ms: float
    effective_priority: float
    def __init__(self, service: _Optional[str] = ..., priority: _Optional[_Union[Priority, str]] = ..., bytes: _Optional[int] = ..., waited_ms: _Optional[float] = ..., effective_priority: _Optional[float] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SchedulerStatus(_message.Message):
    __slots__ = ("cpu_only", "devices", "leases", "queue", "decisions")
    CPU_ONLY_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    cpu_only: bool
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    leases: _containers.RepeatedCompositeFieldContainer[Lease]
    queue: _containers.RepeatedCompositeFieldContainer[Waiter]
    decisions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cpu_only: _Optional[bool] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., leases: _Optional[_Iterable[_Union[Lease, _Mapping]]] = ..., queue: _Optional[_Iterable[_Union[Waiter, _Mapping]]] = ..., decisions: _Optional[_Iterable[str]] = ...) -> None: ...
