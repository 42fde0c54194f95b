"""Request bodies of the HTTP API: strict (unknown fields are refused), bounded, documented.

They are the OpenAPI document's schemas too, so a fuzzer that follows the
document finds every limit written down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT = 64_000
Tag = Field(min_length=1, max_length=64)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FiltersIn(Strict):
    project: str = Field("", max_length=200)
    types: list[str] = Field(default_factory=list, max_length=20)
    tags: list[str] = Field(default_factory=list, max_length=20, description="Every tag must match.")
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None


class NoteIn(Strict):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(max_length=512_000, description="Markdown.")
    project: str = Field("", max_length=200, pattern=r"^[\w.\- ]*$")
    type: str = Field("note", min_length=1, max_length=40, pattern=r"^[\w\-]+$")
    tags: list[str] = Field(default_factory=list, max_length=50)
    force: bool = Field(False, description="Store it even when it nearly duplicates a note of the same project.")
    url: str = Field("", max_length=2048, pattern=r"^(https?://[^\s\x00-\x1f]+)?$",
                     description="Where it came from (a page, a chat message, an issue): the note's `url` in its frontmatter.")

    @field_validator("title", "body", "tags")
    @classmethod
    def no_nul(cls, value: str | list[str]) -> str | list[str]:
        if any("\x00" in v for v in ([value] if isinstance(value, str) else value)):
            raise ValueError("contains a NUL character, which a note cannot hold")
        return value


class NoteEdit(Strict):
    """What changes in a note; what is left out stays."""

    title: str | None = Field(None, min_length=1, max_length=300)
    body: str | None = Field(None, min_length=1, max_length=512_000, description="Markdown: the whole new body.")
    tags: list[str] | None = Field(None, max_length=50)
    type: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[\w\-]+$")
    content_hash: str = Field("", pattern=r"^([0-9a-f]{64})?$", description="The note's content_hash as it was opened: "
                              "the edit is refused (409) when the note changed since.")

    @field_validator("title", "body", "tags")
    @classmethod
    def no_nul(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and any("\x00" in v for v in ([value] if isinstance(value, str) else value)):
            raise ValueError("contains a NUL character, which a note cannot hold")
        return value

    @model_validator(mode="after")
    def changes_something(self) -> NoteEdit:
        if self.title is None and self.body is None and self.tags is None and self.type is None:
            raise ValueError("give at least one of title, body, tags or type")
        return self


class IngestIn(Strict):
    path: str = Field(min_length=1, max_length=4096, description="An absolute file or folder path under TESSERA_INGEST_ROOTS.")
    project: str = Field("", max_length=200, pattern=r"^[\w.\- ]*$")


class MarkdownIn(Strict):
    text: str = Field(max_length=512_000, description="Markdown to render (the capture page's preview).")


class SearchIn(Strict):
    query: str = Field(min_length=1, max_length=8192)
    top_k: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "lexical", "vector"] = "hybrid"
    filters: FiltersIn | None = None
    bypass_cache: bool = False
    explain: bool = Field(False, description="Each signal's contribution to the fused score; the lexical signal's matched terms.")
    recency_half_life_days: float = Field(0.0, ge=0, le=36_500, description="The fused score is multiplied by 0.5 ^ (the note's age in "
                                          "days / this): newer notes first among equals. 0: off.")


Purpose = Literal["user", "eval", "bench"]
Mode = Literal["answer", "research"]
MODE_DOC = ("`answer`: from the question's own sources; `research`: the model plans up to three searches, each is run "
            "(each a `step` event), and one answer cites every note it used.")
PURPOSE_DOC = ("Who a new conversation is for: `user` (a person), or `eval` and `bench` (the tools' runs); "
               "`GET /api/v1/conversations` lists `user` unless asked.")


class ChatIn(Strict):
    question: str = Field(min_length=1, max_length=MAX_TEXT)
    conversation_id: str | None = Field(None, max_length=64, description="Continue this conversation; empty: a new one.")
    system: str | None = Field(None, max_length=MAX_TEXT, description="Extra instructions beside Tessera's own.")
    rag: bool = Field(True, description="Answer from retrieved notes, with citations.")
    top_k_sources: int | None = Field(None, ge=1, le=20)
    filters: FiltersIn | None = None
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    stop: list[str] | None = Field(None, max_length=4)
    stream: bool = Field(True, description="Server-sent events (token, citation, step, done, error); false: one JSON answer.")
    purpose: Purpose = Field("user", description=PURPOSE_DOC)
    mode: Mode = Field("answer", description=MODE_DOC)


class TextPart(Strict):
    type: Literal["text"]
    text: str = Field(max_length=MAX_TEXT)


class OpenAIMessage(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] = Field(description="Text, or text parts; other part types are not supported.")
    name: str | None = Field(None, max_length=64)


class StreamOptions(Strict):
    include_usage: bool = False


class ChatCompletionIn(Strict):
    model: str = Field(min_length=1, max_length=200)
    messages: list[OpenAIMessage] = Field(min_length=1, max_length=200)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    stop: str | list[str] | None = None
    n: Literal[1] | None = Field(None, description="Only one choice is generated.")
    user: str | None = Field(None, max_length=256)
    # Tessera's own fields (pass them with the openai client's extra_body).
    rag: bool = Field(True, description="Answer from retrieved notes; citations arrive in a `citations` field.")
    top_k_sources: int | None = Field(None, ge=1, le=20)
    filters: FiltersIn | None = None
    conversation_id: str | None = Field(None, max_length=64)
    purpose: Purpose = Field("user", description=PURPOSE_DOC)
    mode: Mode = Field("answer", description=MODE_DOC + " The steps are not in OpenAI's chunks; the answer is.")


class EmbeddingsIn(Strict):
    input: str | list[str] = Field(description="A text or up to 256 texts; token arrays are not supported.")
    model: str = Field(min_length=1, max_length=200)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=4096)
    user: str | None = Field(None, max_length=256)


class ErrorDetail(BaseModel):
    message: str = Field(description="One sentence saying what was wrong.")
    type: str = Field(description="OpenAI's error type: invalid_request_error, authentication_error, not_found_error, rate_limit_error, api_error.")
    code: str | None = Field(default=None, description="The mesh's gRPC status name, or a short code.")
    param: str | None = None
    status: int = Field(description="The HTTP status, repeated.")


class ErrorOut(BaseModel):
    """Every error the gateway answers has this one shape (OpenAI's)."""

    error: ErrorDetail


#: The error answers every route may give, documented once for the whole API.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorOut, "description": text} for status, text in (
        (400, "The request is malformed or a value is out of range; the message says which."),
        (401, "An API key is needed, or the one sent is not valid."),
        (403, "The request is not allowed."),
        (404, "Nothing has that id or name."),
        (409, "The request conflicts with the current state."),
        (413, "The body is larger than TESSERA_GATEWAY_MAX_BODY_BYTES."),
        (422, "The body does not match the schema; the message names the field."),
        (429, "The rate limit or the chat queue is full; Retry-After says when to come back."),
        (502, "A service of the mesh failed while answering."),
        (503, "A service of the mesh is unavailable."),
        (504, "A service of the mesh did not answer in time."),
    )
}

def sse_response(events: list[str] | None, about: str) -> dict[int | str, dict[str, object]]:
    """A 200 that is server-sent events (the default) or one JSON object (stream: false); each event's schema."""
    event: dict[str, object] = {"type": "string", "enum": events} if events else {"type": "string"}
    schema = {"type": "object", "required": ["data"], "properties": {"event": event, "data": {"type": "string", "description": about}}}
    return {200: {"description": "Server-sent events (the default), or one JSON object with stream: false.",
                  "content": {"text/event-stream": {"schema": schema}}}}


#: /api/v1/chat: named events; their data is JSON.
CHAT_SSE = sse_response(["token", "citation", "done", "error"], "a JSON object: the token, citation, done or error")
#: /v1/chat/completions: OpenAI's unnamed events; data is a chat.completion.chunk, an error object, or [DONE].
COMPLETIONS_SSE = sse_response(None, "a chat.completion.chunk as JSON, an error object, or [DONE]")


class EnrichIn(Strict):
    document_id: str = Field("", max_length=64, description="A stored document: enriched again, and the result stored.")
    text: str = Field("", max_length=512_000, description="Or a text: enriched, nothing stored.")
    title: str = Field("", max_length=300)


class EnrichDeferredIn(Strict):
    document_ids: list[str] = Field([], max_length=1000, description="These documents; else the project's; else every one.")
    project: str = Field("", max_length=200, pattern=r"^[\w.\- ]*$")


class ReviewIn(Strict):
    since: str = Field("7d", pattern=r"^\d{1,5}(\.\d+)?[dhw]?$", description="The window: days (7d, or 7), hours (36h) or weeks (2w).")
    project: str = Field("", max_length=200, pattern=r"^[\w.\- ]*$")
    save: bool = Field(True, description="Save it as a note of type review in the notes folder (searchable).")


class ConversationPatch(Strict):
    title: str = Field(min_length=1, max_length=200, description="The conversation's new title.")
