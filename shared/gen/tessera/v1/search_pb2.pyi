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

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]
    SEARCH_MODE_LEXICAL: _ClassVar[SearchMode]
    SEARCH_MODE_VECTOR: _ClassVar[SearchMode]
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_HYBRID: SearchMode
SEARCH_MODE_LEXICAL: SearchMode
SEARCH_MODE_VECTOR: SearchMode

class SearchRequest(_message.Message):
    __slots__ = ("query", "top_k", "filters", "mode", "bypass_cache", "explain", "recency_half_life_days")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    BYPASS_CACHE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    RECENCY_HALF_LIFE_DAYS_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    filters: _common_pb2.Filters
    mode: SearchMode
    bypass_cache: bool
    explain: bool
    recency_half_life_days: float
    def __init__(self, query: _Optional[str] = ..., top_k: _Optional[int] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., bypass_cache: _Optional[bool] = ..., explain: _Optional[bool] = ..., recency_half_life_days: _Optional[float] = ...) -> None: ...

class TermWeight(_message.Message):
    __slots__ = ("term", "weight")
    TERM_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    term: str
    weight: float
    def __init__(self, term: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Signal(_message.Message):
    __slots__ = ("name", "score", "rank", "contribution", "terms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    rank: int
    contribution: float
    terms: _containers.RepeatedCompositeFieldContainer[TermWeight]
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ..., rank: _Optional[int] = ..., contribution: _Optional[float] = ..., terms: _Optional[_Iterable[_Union[TermWeight, _Mapping]]] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("source", "snippet", "score", "signals", "project", "type", "tags", "enrichment", "updated_at", "recency")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ENRICHMENT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FIELD_NUMBER: _ClassVar[int]
    source: _common_pb2.SourceRef
    snippet: str
    score: float
    signals: _containers.RepeatedCompositeFieldContainer[Signal]
    project: str
    type: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    enrichment: _common_pb2.Enrichment
    updated_at: _timestamp_pb2.Timestamp
    recency: float
    def __init__(self, source: _Optional[_Union[_common_pb2.SourceRef, _Mapping]] = ..., snippet: _Optional[str] = ..., score: _Optional[float] = ..., signals: _Optional[_Iterable[_Union[Signal, _Mapping]]] = ..., project: _Optional[str] = ..., type: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., enrichment: _Optional[_Union[_common_pb2.Enrichment, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., recency: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "index_generation", "took_ms", "cached", "degraded")
    HITS_FIELD_NUMBER: _ClassVar[int]
    INDEX_GENERATION_FIELD_NUMBER: _ClassVar[int]
    TOOK_MS_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    index_generation: int
    took_ms: float
    cached: bool
    degraded: str
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., index_generation: _Optional[int] = ..., took_ms: _Optional[float] = ..., cached: _Optional[bool] = ..., degraded: _Optional[str] = ...) -> None: ...

class RelatedRequest(_message.Message):
    __slots__ = ("document_id", "path", "limit", "min_score")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    path: str
    limit: int
    min_score: float
    def __init__(self, document_id: _Optional[str] = ..., path: _Optional[str] = ..., limit: _Optional[int] = ..., min_score: _Optional[float] = ...) -> None: ...

class RelatedDocument(_message.Message):
    __slots__ = ("document_id", "title", "path", "score")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    title: str
    path: str
    score: float
    def __init__(self, document_id: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class RelatedResponse(_message.Message):
    __slots__ = ("related",)
    RELATED_FIELD_NUMBER: _ClassVar[int]
    related: _containers.RepeatedCompositeFieldContainer[RelatedDocument]
    def __init__(self, related: _Optional[_Iterable[_Union[RelatedDocument, _Mapping]]] = ...) -> None: ...

class Cluster(_message.Message):
    __slots__ = ("cluster_id", "project", "name", "terms", "size", "new_documents", "examples", "created_at")
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    cluster_id: int
    project: str
    name: str
    terms: _containers.RepeatedScalarFieldContainer[str]
    size: int
    new_documents: int
    examples: _containers.RepeatedCompositeFieldContainer[RelatedDocument]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, cluster_id: _Optional[int] = ..., project: _Optional[str] = ..., name: _Optional[str] = ..., terms: _Optional[_Iterable[str]] = ..., size: _Optional[int] = ..., new_documents: _Optional[int] = ..., examples: _Optional[_Iterable[_Union[RelatedDocument, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MergeSuggestion(_message.Message):
    __slots__ = ("a", "b", "similarity")
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    a: int
    b: int
    similarity: float
    def __init__(self, a: _Optional[int] = ..., b: _Optional[int] = ..., similarity: _Optional[float] = ...) -> None: ...

class MapRequest(_message.Message):
    __slots__ = ("project", "rebuild", "examples", "since_days", "points")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REBUILD_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    SINCE_DAYS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    rebuild: bool
    examples: int
    since_days: float
    points: bool
    def __init__(self, project: _Optional[str] = ..., rebuild: _Optional[bool] = ..., examples: _Optional[int] = ..., since_days: _Optional[float] = ..., points: _Optional[bool] = ...) -> None: ...

class MapResponse(_message.Message):
    __slots__ = ("clusters", "merges", "unassigned", "clustered_at", "points", "runs", "points_left_out")
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    MERGES_FIELD_NUMBER: _ClassVar[int]
    UNASSIGNED_FIELD_NUMBER: _ClassVar[int]
    CLUSTERED_AT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    POINTS_LEFT_OUT_FIELD_NUMBER: _ClassVar[int]
    clusters: _containers.RepeatedCompositeFieldContainer[Cluster]
    merges: _containers.RepeatedCompositeFieldContainer[MergeSuggestion]
    unassigned: int
    clustered_at: _timestamp_pb2.Timestamp
    points: _containers.RepeatedCompositeFieldContainer[MapPoint]
    runs: _containers.RepeatedCompositeFieldContainer[ClusterRun]
    points_left_out: int
    def __init__(self, clusters: _Optional[_Iterable[_Union[Cluster, _Mapping]]] = ..., merges: _Optional[_Iterable[_Union[MergeSuggestion, _Mapping]]] = ..., unassigned: _Optional[int] = ..., clustered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., points: _Optional[_Iterable[_Union[MapPoint, _Mapping]]] = ..., runs: _Optional[_Iterable[_Union[ClusterRun, _Mapping]]] = ..., points_left_out: _Optional[int] = ...) -> None: ...

class MapPoint(_message.Message):
    __slots__ = ("document_id", "title", "path", "project", "cluster_id", "x", "y", "created_at")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    title: str
    path: str
    project: str
    cluster_id: int
    x: float
    y: float
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, document_id: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., project: _Optional[str] = ..., cluster_id: _Optional[int] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClusterRun(_message.Message):
    __slots__ = ("project", "documents", "clusters", "silhouette", "at")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    SILHOUETTE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    project: str
    documents: int
    clusters: int
    silhouette: float
    at: _timestamp_pb2.Timestamp
    def __init__(self, project: _Optional[str] = ..., documents: _Optional[int] = ..., clusters: _Optional[int] = ..., silhouette: _Optional[float] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StaleRequest(_message.Message):
    __slots__ = ("project", "days", "limit")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    project: str
    days: int
    limit: int
    def __init__(self, project: _Optional[str] = ..., days: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class StaleDocument(_message.Message):
    __slots__ = ("document_id", "title", "path", "updated_at", "last_hit")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HIT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    title: str
    path: str
    updated_at: _timestamp_pb2.Timestamp
    last_hit: _timestamp_pb2.Timestamp
    def __init__(self, document_id: _Optional[str] = ..., title: _Optional[str] = ..., path: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_hit: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StaleResponse(_message.Message):
    __slots__ = ("documents", "total", "days")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    documents: _containers.RepeatedCompositeFieldContainer[StaleDocument]
    total: int
    days: int
    def __init__(self, documents: _Optional[_Iterable[_Union[StaleDocument, _Mapping]]] = ..., total: _Optional[int] = ..., days: _Optional[int] = ...) -> None: ...

class ReviewRequest(_message.Message):
    __slots__ = ("since_days", "project", "claim")
    SINCE_DAYS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    since_days: float
    project: str
    claim: str
    def __init__(self, since_days: _Optional[float] = ..., project: _Optional[str] = ..., claim: _Optional[str] = ...) -> None: ...

class ReviewResponse(_message.Message):
    __slots__ = ("markdown", "title", "claimed", "since")
    MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    markdown: str
    title: str
    claimed: bool
    since: _timestamp_pb2.Timestamp
    def __init__(self, markdown: _Optional[str] = ..., title: _Optional[str] = ..., claimed: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
