import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shared.gen.tessera.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FileState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILE_STATE_UNSPECIFIED: _ClassVar[FileState]
    FILE_STATE_QUEUED: _ClassVar[FileState]
    FILE_STATE_CHUNKED: _ClassVar[FileState]
    FILE_STATE_EMBEDDED: _ClassVar[FileState]
    FILE_STATE_FAILED: _ClassVar[FileState]
    FILE_STATE_UNCHANGED: _ClassVar[FileState]
    FILE_STATE_DELETED: _ClassVar[FileState]
FILE_STATE_UNSPECIFIED: FileState
FILE_STATE_QUEUED: FileState
FILE_STATE_CHUNKED: FileState
FILE_STATE_EMBEDDED: FileState
FILE_STATE_FAILED: FileState
FILE_STATE_UNCHANGED: FileState
FILE_STATE_DELETED: FileState

class DocumentHeader(_message.Message):
    __slots__ = ("path", "project", "media_type", "size_bytes", "metadata", "dedup", "dedup_threshold")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    DEDUP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    path: str
    project: str
    media_type: str
    size_bytes: int
    metadata: _containers.ScalarMap[str, str]
    dedup: bool
    dedup_threshold: float
    def __init__(self, path: _Optional[str] = ..., project: _Optional[str] = ..., media_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ..., dedup: _Optional[bool] = ..., dedup_threshold: _Optional[float] = ...) -> None: ...

class IngestDocumentChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: DocumentHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[DocumentHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class FileStatus(_message.Message):
    __slots__ = ("path", "document_id", "state", "reason", "chunks", "chunks_embedded", "content_hash", "warnings")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    path: str
    document_id: str
    state: FileState
    reason: str
    chunks: int
    chunks_embedded: int
    content_hash: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[str] = ..., document_id: _Optional[str] = ..., state: _Optional[_Union[FileState, str]] = ..., reason: _Optional[str] = ..., chunks: _Optional[int] = ..., chunks_embedded: _Optional[int] = ..., content_hash: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class IngestDocumentResponse(_message.Message):
    __slots__ = ("job_id", "file", "duplicate", "similarity", "existing")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    file: FileStatus
    duplicate: bool
    similarity: float
    existing: Document
    def __init__(self, job_id: _Optional[str] = ..., file: _Optional[_Union[FileStatus, _Mapping]] = ..., duplicate: _Optional[bool] = ..., similarity: _Optional[float] = ..., existing: _Optional[_Union[Document, _Mapping]] = ...) -> None: ...

class IngestPathRequest(_message.Message):
    __slots__ = ("path", "project", "recursive", "include", "keep_missing")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELD_NUMBER: _ClassVar[int]
    KEEP_MISSING_FIELD_NUMBER: _ClassVar[int]
    path: str
    project: str
    recursive: bool
    include: _containers.RepeatedScalarFieldContainer[str]
    keep_missing: bool
    def __init__(self, path: _Optional[str] = ..., project: _Optional[str] = ..., recursive: _Optional[bool] = ..., include: _Optional[_Iterable[str]] = ..., keep_missing: _Optional[bool] = ...) -> None: ...

class JobCounts(_message.Message):
    __slots__ = ("files", "queued", "chunked", "embedded", "failed", "unchanged", "deleted", "chunks", "chunks_embedded")
    FILES_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    CHUNKED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    files: int
    queued: int
    chunked: int
    embedded: int
    failed: int
    unchanged: int
    deleted: int
    chunks: int
    chunks_embedded: int
    def __init__(self, files: _Optional[int] = ..., queued: _Optional[int] = ..., chunked: _Optional[int] = ..., embedded: _Optional[int] = ..., failed: _Optional[int] = ..., unchanged: _Optional[int] = ..., deleted: _Optional[int] = ..., chunks: _Optional[int] = ..., chunks_embedded: _Optional[int] = ...) -> None: ...

class IngestJob(_message.Message):
    __slots__ = ("job_id", "root", "project", "created_at", "finished_at", "done", "counts", "files")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    root: str
    project: str
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    done: bool
    counts: JobCounts
    files: _containers.RepeatedCompositeFieldContainer[FileStatus]
    def __init__(self, job_id: _Optional[str] = ..., root: _Optional[str] = ..., project: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., done: _Optional[bool] = ..., counts: _Optional[_Union[JobCounts, _Mapping]] = ..., files: _Optional[_Iterable[_Union[FileStatus, _Mapping]]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "include_files")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FILES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    include_files: bool
    def __init__(self, job_id: _Optional[str] = ..., include_files: _Optional[bool] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("document_id", "path", "project", "title", "type", "tags", "created_at", "updated_at", "content_hash", "chunks", "warnings", "enrichment")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ENRICHMENT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    path: str
    project: str
    title: str
    type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    content_hash: str
    chunks: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    enrichment: _common_pb2.Enrichment
    def __init__(self, document_id: _Optional[str] = ..., path: _Optional[str] = ..., project: _Optional[str] = ..., title: _Optional[str] = ..., type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., content_hash: _Optional[str] = ..., chunks: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ..., enrichment: _Optional[_Union[_common_pb2.Enrichment, _Mapping]] = ...) -> None: ...

class GetDocumentRequest(_message.Message):
    __slots__ = ("document_id", "path")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    path: str
    def __init__(self, document_id: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class DeleteDocumentRequest(_message.Message):
    __slots__ = ("document_id",)
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    def __init__(self, document_id: _Optional[str] = ...) -> None: ...

class DeleteDocumentResponse(_message.Message):
    __slots__ = ("deleted", "file_removed")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    FILE_REMOVED_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    file_removed: bool
    def __init__(self, deleted: _Optional[bool] = ..., file_removed: _Optional[bool] = ...) -> None: ...

class ReadDocumentRequest(_message.Message):
    __slots__ = ("document_id", "path", "from_line", "max_lines", "include_chunks", "export")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FROM_LINE_FIELD_NUMBER: _ClassVar[int]
    MAX_LINES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CHUNKS_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    path: str
    from_line: int
    max_lines: int
    include_chunks: bool
    export: bool
    def __init__(self, document_id: _Optional[str] = ..., path: _Optional[str] = ..., from_line: _Optional[int] = ..., max_lines: _Optional[int] = ..., include_chunks: _Optional[bool] = ..., export: _Optional[bool] = ...) -> None: ...

class ChunkSpan(_message.Message):
    __slots__ = ("ord", "line_start", "line_end", "heading_path", "chars", "embedded", "chunk_id")
    ORD_FIELD_NUMBER: _ClassVar[int]
    LINE_START_FIELD_NUMBER: _ClassVar[int]
    LINE_END_FIELD_NUMBER: _ClassVar[int]
    HEADING_PATH_FIELD_NUMBER: _ClassVar[int]
    CHARS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    ord: int
    line_start: int
    line_end: int
    heading_path: _containers.RepeatedScalarFieldContainer[str]
    chars: int
    embedded: bool
    chunk_id: str
    def __init__(self, ord: _Optional[int] = ..., line_start: _Optional[int] = ..., line_end: _Optional[int] = ..., heading_path: _Optional[_Iterable[str]] = ..., chars: _Optional[int] = ..., embedded: _Optional[bool] = ..., chunk_id: _Optional[str] = ...) -> None: ...

class DocumentText(_message.Message):
    __slots__ = ("document", "from_line", "lines", "total_lines", "truncated", "chunks")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    FROM_LINE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LINES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    document: Document
    from_line: int
    lines: _containers.RepeatedScalarFieldContainer[str]
    total_lines: int
    truncated: bool
    chunks: _containers.RepeatedCompositeFieldContainer[ChunkSpan]
    def __init__(self, document: _Optional[_Union[Document, _Mapping]] = ..., from_line: _Optional[int] = ..., lines: _Optional[_Iterable[str]] = ..., total_lines: _Optional[int] = ..., truncated: _Optional[bool] = ..., chunks: _Optional[_Iterable[_Union[ChunkSpan, _Mapping]]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "include_files")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FILES_FIELD_NUMBER: _ClassVar[int]
    limit: int
    include_files: bool
    def __init__(self, limit: _Optional[int] = ..., include_files: _Optional[bool] = ...) -> None: ...

class JobList(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[IngestJob]
    def __init__(self, jobs: _Optional[_Iterable[_Union[IngestJob, _Mapping]]] = ...) -> None: ...

class ListDocumentsRequest(_message.Message):
    __slots__ = ("project", "path_glob", "limit", "offset")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PATH_GLOB_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    project: str
    path_glob: str
    limit: int
    offset: int
    def __init__(self, project: _Optional[str] = ..., path_glob: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class DocumentList(_message.Message):
    __slots__ = ("documents",)
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[Document]
    def __init__(self, documents: _Optional[_Iterable[_Union[Document, _Mapping]]] = ...) -> None: ...

class LibraryCount(_message.Message):
    __slots__ = ("name", "documents")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    documents: int
    def __init__(self, name: _Optional[str] = ..., documents: _Optional[int] = ...) -> None: ...

class GetLibraryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Library(_message.Message):
    __slots__ = ("projects", "types", "tags", "documents", "chunks", "chunks_embedded", "backlog")
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[LibraryCount]
    types: _containers.RepeatedCompositeFieldContainer[LibraryCount]
    tags: _containers.RepeatedCompositeFieldContainer[LibraryCount]
    documents: int
    chunks: int
    chunks_embedded: int
    backlog: Backlog
    def __init__(self, projects: _Optional[_Iterable[_Union[LibraryCount, _Mapping]]] = ..., types: _Optional[_Iterable[_Union[LibraryCount, _Mapping]]] = ..., tags: _Optional[_Iterable[_Union[LibraryCount, _Mapping]]] = ..., documents: _Optional[int] = ..., chunks: _Optional[int] = ..., chunks_embedded: _Optional[int] = ..., backlog: _Optional[_Union[Backlog, _Mapping]] = ...) -> None: ...

class Backlog(_message.Message):
    __slots__ = ("chunks_waiting", "chunks_per_minute", "embed_eta_s", "enrich_waiting", "enrich_deferred", "enriched_per_minute", "enrich_eta_s")
    CHUNKS_WAITING_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    EMBED_ETA_S_FIELD_NUMBER: _ClassVar[int]
    ENRICH_WAITING_FIELD_NUMBER: _ClassVar[int]
    ENRICH_DEFERRED_FIELD_NUMBER: _ClassVar[int]
    ENRICHED_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ENRICH_ETA_S_FIELD_NUMBER: _ClassVar[int]
    chunks_waiting: int
    chunks_per_minute: float
    embed_eta_s: float
    enrich_waiting: int
    enrich_deferred: int
    enriched_per_minute: float
    enrich_eta_s: float
    def __init__(self, chunks_waiting: _Optional[int] = ..., chunks_per_minute: _Optional[float] = ..., embed_eta_s: _Optional[float] = ..., enrich_waiting: _Optional[int] = ..., enrich_deferred: _Optional[int] = ..., enriched_per_minute: _Optional[float] = ..., enrich_eta_s: _Optional[float] = ...) -> None: ...

class GetWatchRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchedRoot(_message.Message):
    __slots__ = ("path", "documents")
    PATH_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    path: str
    documents: int
    def __init__(self, path: _Optional[str] = ..., documents: _Optional[int] = ...) -> None: ...

class WatchStatus(_message.Message):
    __slots__ = ("roots", "leader", "answered_by_leader")
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_BY_LEADER_FIELD_NUMBER: _ClassVar[int]
    roots: _containers.RepeatedCompositeFieldContainer[WatchedRoot]
    leader: str
    answered_by_leader: bool
    def __init__(self, roots: _Optional[_Iterable[_Union[WatchedRoot, _Mapping]]] = ..., leader: _Optional[str] = ..., answered_by_leader: _Optional[bool] = ...) -> None: ...

class EnrichDeferredRequest(_message.Message):
    __slots__ = ("document_ids", "project", "all")
    DOCUMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    document_ids: _containers.RepeatedScalarFieldContainer[str]
    project: str
    all: bool
    def __init__(self, document_ids: _Optional[_Iterable[str]] = ..., project: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class EnrichDeferredResponse(_message.Message):
    __slots__ = ("queued",)
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    queued: int
    def __init__(self, queued: _Optional[int] = ...) -> None: ...

class SetEnrichmentRequest(_message.Message):
    __slots__ = ("document_id", "content_hash", "enrichment")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    ENRICHMENT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    content_hash: str
    enrichment: _common_pb2.Enrichment
    def __init__(self, document_id: _Optional[str] = ..., content_hash: _Optional[str] = ..., enrichment: _Optional[_Union[_common_pb2.Enrichment, _Mapping]] = ...) -> None: ...

class SetEnrichmentResponse(_message.Message):
    __slots__ = ("stored", "index_generation")
    STORED_FIELD_NUMBER: _ClassVar[int]
    INDEX_GENERATION_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    index_generation: int
    def __init__(self, stored: _Optional[bool] = ..., index_generation: _Optional[int] = ...) -> None: ...
