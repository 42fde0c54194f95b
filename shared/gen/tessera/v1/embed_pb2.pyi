from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbedPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMBED_PURPOSE_UNSPECIFIED: _ClassVar[EmbedPurpose]
    EMBED_PURPOSE_QUERY: _ClassVar[EmbedPurpose]
    EMBED_PURPOSE_DOCUMENT: _ClassVar[EmbedPurpose]
EMBED_PURPOSE_UNSPECIFIED: EmbedPurpose
EMBED_PURPOSE_QUERY: EmbedPurpose
EMBED_PURPOSE_DOCUMENT: EmbedPurpose

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "purpose", "model")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    purpose: EmbedPurpose
    model: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., purpose: _Optional[_Union[EmbedPurpose, str]] = ..., model: _Optional[str] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("model_id", "dim", "vectors", "cache_hits")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dim: int
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    cache_hits: int
    def __init__(self, model_id: _Optional[str] = ..., dim: _Optional[int] = ..., vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., cache_hits: _Optional[int] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "dim", "device", "max_seq_length")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LENGTH_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    dim: int
    device: str
    max_seq_length: int
    def __init__(self, model_id: _Optional[str] = ..., dim: _Optional[int] = ..., device: _Optional[str] = ..., max_seq_length: _Optional[int] = ...) -> None: ...
