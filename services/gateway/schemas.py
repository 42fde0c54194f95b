"""Request bodies of the HTTP API: strict (unknown fields are refused), bounded, documented.

They are the OpenAPI document's schemas too, so a fuzzer that follows the
document finds every limit written down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


class SearchIn(Strict):
    query: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(10, ge=1, le=100)
    mode: Literal["hybrid", "lexical", "vector"] = "hybrid"
    filters: FiltersIn | None = None
    bypass_cache: bool = False


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
    stream: bool = Field(True, description="Server-sent events (token, citation, done, error); false: one JSON answer.")


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


class EmbeddingsIn(Strict):
    input: str | list[str] = Field(description="A text or up to 256 texts; token arrays are not supported.")
    model: str = Field(min_length=1, max_length=200)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1, le=4096)
    user: str | None = Field(None, max_length=256)
