import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from shared.gen.tessera.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChatMessage(_message.Message):
    __slots__ = ("role", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("conversation_id", "messages", "rag", "top_k_sources", "filters", "max_tokens", "temperature", "top_p", "seed", "model", "stop", "purpose", "mode")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    RAG_FIELD_NUMBER: _ClassVar[int]
    TOP_K_SOURCES_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    rag: bool
    top_k_sources: int
    filters: _common_pb2.Filters
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    model: str
    stop: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    mode: str
    def __init__(self, conversation_id: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., rag: _Optional[bool] = ..., top_k_sources: _Optional[int] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., model: _Optional[str] = ..., stop: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class TokenChunk(_message.Message):
    __slots__ = ("text", "index", "citations")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    text: str
    index: int
    citations: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, text: _Optional[str] = ..., index: _Optional[int] = ..., citations: _Optional[_Iterable[int]] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("number", "source", "score", "origin")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    number: int
    source: _common_pb2.SourceRef
    score: float
    origin: str
    def __init__(self, number: _Optional[int] = ..., source: _Optional[_Union[_common_pb2.SourceRef, _Mapping]] = ..., score: _Optional[float] = ..., origin: _Optional[str] = ...) -> None: ...

class SentenceSupport(_message.Message):
    __slots__ = ("start", "end", "support", "number", "source", "share")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    support: str
    number: int
    source: _common_pb2.SourceRef
    share: float
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ..., support: _Optional[str] = ..., number: _Optional[int] = ..., source: _Optional[_Union[_common_pb2.SourceRef, _Mapping]] = ..., share: _Optional[float] = ...) -> None: ...

class ChatDone(_message.Message):
    __slots__ = ("finish_reason", "prompt_tokens", "completion_tokens", "conversation_id", "message_id", "duration_ms", "sources", "retrieval_ms", "sentences", "cached_tokens", "prefill_ms", "text")
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_MS_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    CACHED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    conversation_id: str
    message_id: str
    duration_ms: float
    sources: _containers.RepeatedCompositeFieldContainer[Citation]
    retrieval_ms: float
    sentences: _containers.RepeatedCompositeFieldContainer[SentenceSupport]
    cached_tokens: int
    prefill_ms: float
    text: str
    def __init__(self, finish_reason: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., duration_ms: _Optional[float] = ..., sources: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., retrieval_ms: _Optional[float] = ..., sentences: _Optional[_Iterable[_Union[SentenceSupport, _Mapping]]] = ..., cached_tokens: _Optional[int] = ..., prefill_ms: _Optional[float] = ..., text: _Optional[str] = ...) -> None: ...

class ResearchStep(_message.Message):
    __slots__ = ("kind", "text", "new_sources", "ms")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NEW_SOURCES_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    text: str
    new_sources: int
    ms: float
    def __init__(self, kind: _Optional[str] = ..., text: _Optional[str] = ..., new_sources: _Optional[int] = ..., ms: _Optional[float] = ...) -> None: ...

class ChatError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ChatEvent(_message.Message):
    __slots__ = ("token", "citation", "done", "error", "step")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    token: TokenChunk
    citation: Citation
    done: ChatDone
    error: ChatError
    step: ResearchStep
    def __init__(self, token: _Optional[_Union[TokenChunk, _Mapping]] = ..., citation: _Optional[_Union[Citation, _Mapping]] = ..., done: _Optional[_Union[ChatDone, _Mapping]] = ..., error: _Optional[_Union[ChatError, _Mapping]] = ..., step: _Optional[_Union[ResearchStep, _Mapping]] = ...) -> None: ...

class StartChatResponse(_message.Message):
    __slots__ = ("ticket", "conversation_id")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    ticket: _common_pb2.StreamTicket
    conversation_id: str
    def __init__(self, ticket: _Optional[_Union[_common_pb2.StreamTicket, _Mapping]] = ..., conversation_id: _Optional[str] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class StoredMessage(_message.Message):
    __slots__ = ("message_id", "role", "content", "citations", "created_at", "finish_reason", "sentences")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    role: str
    content: str
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    created_at: _timestamp_pb2.Timestamp
    finish_reason: str
    sentences: _containers.RepeatedCompositeFieldContainer[SentenceSupport]
    def __init__(self, message_id: _Optional[str] = ..., role: _Optional[str] = ..., content: _Optional[str] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_reason: _Optional[str] = ..., sentences: _Optional[_Iterable[_Union[SentenceSupport, _Mapping]]] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "title", "created_at", "messages", "purpose", "updated_at")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    title: str
    created_at: _timestamp_pb2.Timestamp
    messages: _containers.RepeatedCompositeFieldContainer[StoredMessage]
    purpose: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, conversation_id: _Optional[str] = ..., title: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[StoredMessage, _Mapping]]] = ..., purpose: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("limit", "purpose")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    purpose: str
    def __init__(self, limit: _Optional[int] = ..., purpose: _Optional[str] = ...) -> None: ...

class RenameConversationRequest(_message.Message):
    __slots__ = ("conversation_id", "title")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    title: str
    def __init__(self, conversation_id: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...

class DeleteConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class DeleteConversationResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: int
    def __init__(self, messages: _Optional[int] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("conversations",)
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    conversations: _containers.RepeatedCompositeFieldContainer[Conversation]
    def __init__(self, conversations: _Optional[_Iterable[_Union[Conversation, _Mapping]]] = ...) -> None: ...

class GetChatModelRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ChatModelInfo(_message.Message):
    __slots__ = ("name", "path", "context_tokens", "slots", "queue_depth", "busy", "waiting", "profile", "backend", "selftest")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    SELFTEST_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    context_tokens: int
    slots: int
    queue_depth: int
    busy: int
    waiting: int
    profile: str
    backend: str
    selftest: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., context_tokens: _Optional[int] = ..., slots: _Optional[int] = ..., queue_depth: _Optional[int] = ..., busy: _Optional[int] = ..., waiting: _Optional[int] = ..., profile: _Optional[str] = ..., backend: _Optional[str] = ..., selftest: _Optional[str] = ...) -> None: ...

class EnrichRequest(_message.Message):
    __slots__ = ("document_id", "text", "title")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    title: str
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ..., title: _Optional[str] = ...) -> None: ...
