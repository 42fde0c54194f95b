from shared.gen.tessera.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kernel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KERNEL_UNSPECIFIED: _ClassVar[Kernel]
    KERNEL_KEYS: _ClassVar[Kernel]
    KERNEL_BSPLINE: _ClassVar[Kernel]

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_FLOAT64: _ClassVar[DType]
KERNEL_UNSPECIFIED: Kernel
KERNEL_KEYS: Kernel
KERNEL_BSPLINE: Kernel
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_FLOAT64: DType

class ResampleSpec(_message.Message):
    __slots__ = ("kernel", "input_shape", "dtype", "output_shape", "zoom", "tile_shape", "input_path", "allow_nonfinite")
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    ZOOM_FIELD_NUMBER: _ClassVar[int]
    TILE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_NONFINITE_FIELD_NUMBER: _ClassVar[int]
    kernel: Kernel
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    zoom: _containers.RepeatedScalarFieldContainer[float]
    tile_shape: _containers.RepeatedScalarFieldContainer[int]
    input_path: str
    allow_nonfinite: bool
    def __init__(self, kernel: _Optional[_Union[Kernel, str]] = ..., input_shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., output_shape: _Optional[_Iterable[int]] = ..., zoom: _Optional[_Iterable[float]] = ..., tile_shape: _Optional[_Iterable[int]] = ..., input_path: _Optional[str] = ..., allow_nonfinite: _Optional[bool] = ...) -> None: ...

class ResampleRequest(_message.Message):
    __slots__ = ("spec", "data")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    spec: ResampleSpec
    data: bytes
    def __init__(self, spec: _Optional[_Union[ResampleSpec, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Tile(_message.Message):
    __slots__ = ("index", "offset", "shape", "dtype", "data")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    index: int
    offset: _containers.RepeatedScalarFieldContainer[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    data: bytes
    def __init__(self, index: _Optional[int] = ..., offset: _Optional[_Iterable[int]] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TensorEnd(_message.Message):
    __slots__ = ("tiles", "bytes", "output_shape", "duration_ms", "workers", "backends", "peak_tiles_held", "worker_peak_tiles")
    TILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    PEAK_TILES_HELD_FIELD_NUMBER: _ClassVar[int]
    WORKER_PEAK_TILES_FIELD_NUMBER: _ClassVar[int]
    tiles: int
    bytes: int
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    duration_ms: float
    workers: _containers.RepeatedScalarFieldContainer[str]
    backends: _containers.RepeatedScalarFieldContainer[str]
    peak_tiles_held: int
    worker_peak_tiles: int
    def __init__(self, tiles: _Optional[int] = ..., bytes: _Optional[int] = ..., output_shape: _Optional[_Iterable[int]] = ..., duration_ms: _Optional[float] = ..., workers: _Optional[_Iterable[str]] = ..., backends: _Optional[_Iterable[str]] = ..., peak_tiles_held: _Optional[int] = ..., worker_peak_tiles: _Optional[int] = ...) -> None: ...

class TensorStart(_message.Message):
    __slots__ = ("job_id", "output_shape", "dtype", "tiles", "tile_shape")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    TILE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: DType
    tiles: int
    tile_shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, job_id: _Optional[str] = ..., output_shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[_Union[DType, str]] = ..., tiles: _Optional[int] = ..., tile_shape: _Optional[_Iterable[int]] = ...) -> None: ...

class TensorFrame(_message.Message):
    __slots__ = ("tile", "end", "error", "start")
    TILE_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    tile: Tile
    end: TensorEnd
    error: TensorError
    start: TensorStart
    def __init__(self, tile: _Optional[_Union[Tile, _Mapping]] = ..., end: _Optional[_Union[TensorEnd, _Mapping]] = ..., error: _Optional[_Union[TensorError, _Mapping]] = ..., start: _Optional[_Union[TensorStart, _Mapping]] = ...) -> None: ...

class StartResampleResponse(_message.Message):
    __slots__ = ("ticket", "job_id", "output_shape", "tiles")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    TILES_FIELD_NUMBER: _ClassVar[int]
    ticket: _common_pb2.StreamTicket
    job_id: str
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    tiles: int
    def __init__(self, ticket: _Optional[_Union[_common_pb2.StreamTicket, _Mapping]] = ..., job_id: _Optional[str] = ..., output_shape: _Optional[_Iterable[int]] = ..., tiles: _Optional[int] = ...) -> None: ...

class TensorError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TileJob(_message.Message):
    __slots__ = ("job_id", "index", "kernel", "dtype", "input_shape", "output_shape", "tile_offset", "tile_shape", "region_offset", "region_shape", "data")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    INPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SHAPE_FIELD_NUMBER: _ClassVar[int]
    TILE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TILE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    REGION_OFFSET_FIELD_NUMBER: _ClassVar[int]
    REGION_SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    index: int
    kernel: Kernel
    dtype: DType
    input_shape: _containers.RepeatedScalarFieldContainer[int]
    output_shape: _containers.RepeatedScalarFieldContainer[int]
    tile_offset: _containers.RepeatedScalarFieldContainer[int]
    tile_shape: _containers.RepeatedScalarFieldContainer[int]
    region_offset: _containers.RepeatedScalarFieldContainer[int]
    region_shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, job_id: _Optional[str] = ..., index: _Optional[int] = ..., kernel: _Optional[_Union[Kernel, str]] = ..., dtype: _Optional[_Union[DType, str]] = ..., input_shape: _Optional[_Iterable[int]] = ..., output_shape: _Optional[_Iterable[int]] = ..., tile_offset: _Optional[_Iterable[int]] = ..., tile_shape: _Optional[_Iterable[int]] = ..., region_offset: _Optional[_Iterable[int]] = ..., region_shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class TileResult(_message.Message):
    __slots__ = ("index", "data", "worker_id", "backend", "held", "busy", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    worker_id: str
    backend: str
    held: int
    busy: bool
    error: TensorError
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ..., worker_id: _Optional[str] = ..., backend: _Optional[str] = ..., held: _Optional[int] = ..., busy: _Optional[bool] = ..., error: _Optional[_Union[TensorError, _Mapping]] = ...) -> None: ...
