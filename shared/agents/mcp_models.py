"""What each MCP tool returns (its structured output, which MCP clients validate against the tool's output schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Signal(BaseModel):
    score: float
    rank: int


class SearchHit(BaseModel):
    ref: str = Field(description="path:line_start-line_end, the citation to quote")
    document_id: str
    path: str
    line_start: int
    line_end: int
    title: str
    snippet: str
    score: float
    signals: dict[str, Signal]
    kind: str = Field(default="", description="insight, snippet, decision, bug or reference (the user's type, or enrichment's)")
    summary: str = Field(default="", description="enrichment's one-paragraph summary, when done")
    tags: list[str] = Field(default_factory=list, description="the user's tags and enrichment's")


class SearchOut(BaseModel):
    hits: list[SearchHit]
    took_ms: float
    degraded: str = Field(default="", description="set when the results are less than asked for, saying why (e.g. lexical only)")


class DocumentOut(BaseModel):
    document_id: str
    path: str
    title: str
    project: str
    from_line: int
    to_line: int
    total_lines: int
    truncated: bool
    text: str = Field(description="the lines, each prefixed with its number")
    content_hash: str = Field(default="", description="the file's sha256 as indexed: pass it to edit to refuse an edit of a changed note")


class Skipped(BaseModel):
    path: str
    reason: str


class MultiGetOut(BaseModel):
    documents: list[DocumentOut]
    skipped: list[Skipped]
    bytes: int


class DeleteOut(BaseModel):
    document_id: str
    file_removed: bool  # a captured note's file went too; an imported file stays


class CaptureOut(BaseModel):
    document_id: str
    path: str
    job_id: str
    near_duplicates: list[SearchHit]
    warning: str = ""
    duplicate: bool = False  # not saved: document_id and path are the existing note's (pass force to save anyway)
    similarity: float = 0.0


class RelatedDoc(BaseModel):
    document_id: str
    title: str
    path: str
    score: float


class RelatedOut(BaseModel):
    related: list[RelatedDoc]


class RecentDoc(BaseModel):
    document_id: str
    path: str
    title: str
    project: str
    type: str
    updated_at: str


class RecentOut(BaseModel):
    documents: list[RecentDoc]


class Count(BaseModel):
    name: str
    documents: int


class ServiceState(BaseModel):
    service: str
    status: str
    detail: str = ""


class StatusOut(BaseModel):
    ok: bool
    services: list[ServiceState]
    documents: int
    chunks: int
    chunks_embedded: int
    projects: list[Count]


class Cited(BaseModel):
    number: int
    ref: str
    title: str


class AskOut(BaseModel):
    answer: str
    citations: list[Cited]
    finish_reason: str
    conversation_id: str


class EditOut(BaseModel):
    document_id: str
    path: str
    job_id: str
    content_hash: str  # the edited file's: pass it to the next edit to refuse one made meanwhile
