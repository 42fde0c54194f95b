from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CaptureNoteRequest(_message.Message):
    __slots__ = ("title", "body", "project", "type", "tags", "force")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    title: str
    body: str
    project: str
    type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    force: bool
    def __init__(self, title: _Optional[str] = ..., body: _Optional[str] = ..., project: _Optional[str] = ..., type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., force: _Optional[bool] = ...) -> None: ...

class CaptureNoteResponse(_message.Message):
    __slots__ = ("document_id", "path", "job_id", "duplicate", "similarity")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    path: str
    job_id: str
    duplicate: bool
    similarity: float
    def __init__(self, document_id: _Optional[str] = ..., path: _Optional[str] = ..., job_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., similarity: _Optional[float] = ...) -> None: ...

class EditNoteRequest(_message.Message):
    __slots__ = ("document_id", "title", "body", "tags", "set_tags", "type", "content_hash")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SET_TAGS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    title: str
    body: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    set_tags: bool
    type: str
    content_hash: str
    def __init__(self, document_id: _Optional[str] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., set_tags: _Optional[bool] = ..., type: _Optional[str] = ..., content_hash: _Optional[str] = ...) -> None: ...

class EditNoteResponse(_message.Message):
    __slots__ = ("document_id", "path", "job_id", "content_hash")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    path: str
    job_id: str
    content_hash: str
    def __init__(self, document_id: _Optional[str] = ..., path: _Optional[str] = ..., job_id: _Optional[str] = ..., content_hash: _Optional[str] = ...) -> None: ...
