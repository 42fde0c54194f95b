"""Ingest's pure steps, between a parsed file and what the store writes: a document's id, the stored document
from its parse, a slice's chunks renumbered into the whole file, a job's counts. No I/O."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.ingest.chunk import Chunk
from services.ingest.large import Slice
from services.ingest.parse import Parsed
from shared.contracts import REVIEW_TYPE, enrich_enabled
from shared.conversions import enrichment_proto, timestamp
from shared.gen.tessera.v1 import ingest_pb2

STATES = {"queued": ingest_pb2.FILE_STATE_QUEUED, "chunked": ingest_pb2.FILE_STATE_CHUNKED,
          "embedded": ingest_pb2.FILE_STATE_EMBEDDED, "failed": ingest_pb2.FILE_STATE_FAILED,
          "unchanged": ingest_pb2.FILE_STATE_UNCHANGED, "deleted": ingest_pb2.FILE_STATE_DELETED}
#: A job is done when it has finished listing and every file is in one of these.
TERMINAL = ("embedded", "failed", "unchanged", "deleted")
#: The most chunk texts the near-duplicate check embeds for one capture.
DEDUP_TEXTS = 64


@dataclass
class FileState:
    """One row of ingest_files: what happened to a file of a job."""

    path: str
    state: str
    reason: str = ""
    document_id: uuid.UUID | None = None
    chunks: int = 0
    content_hash: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class Duplicate:
    """A capture that was not stored: the note it duplicates."""

    document_id: uuid.UUID
    similarity: float


@dataclass
class NewDocument:
    """A parsed document and its chunks, as ingest stores them."""

    id: uuid.UUID
    project: str
    path: str
    title: str
    type: str
    tags: list[str]
    media_type: str
    content_hash: str
    warnings: list[str]
    created: dt.datetime | None
    root: str
    size_bytes: int
    chunks: Sequence[Chunk]
    user_fields: Sequence[str] = ()
    kind: str = ""
    body_hash: str = ""
    enrich_state: str = "pending"
    shingle_bands: Sequence[int] = ()  # MinHash bands of its text (dedup.py), for the whole-document near-duplicate check

    def upsert_args(self) -> tuple[Any, ...]:
        return (self.id, self.project, self.path, self.title, self.type, self.tags, self.media_type, self.content_hash, self.warnings,
                self.created, self.root, self.size_bytes, sorted(self.user_fields), self.kind, self.body_hash, self.enrich_state,
                list(self.shingle_bands), self.created)


def chunk_contexts(doc: NewDocument, chunks: Sequence[Chunk] | None = None) -> list[str]:
    """Each chunk's context (what is indexed and embedded with its text): the title, then its heading path."""
    return [" / ".join([doc.title, *[h for h in c.heading_path if h != doc.title]]) for c in (doc.chunks if chunks is None else chunks)]


def document_id(project: str, path: str) -> uuid.UUID:
    """A new document's id: stable for its project and path."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"tessera:{project}:{path}")


def enrich_state(setting: str, project: str, doc_type: str, deferred: bool = False) -> str:
    """A new document's enrichment state: 'pending' where TESSERA_ENRICH covers its project (never for a review), or
    'deferred' (a large import's: enriched once opened, cited or asked for)."""
    if not enrich_enabled(setting, project) or doc_type == REVIEW_TYPE:
        return "off"
    return "deferred" if deferred else "pending"


def new_document(doc_id: uuid.UUID, parsed: Parsed, chunks: Sequence[Chunk], *, project: str, path: str, digest: str, root: str,
                 size: int, extra: Mapping[str, str], enrich: str) -> NewDocument:
    """The document to store from a parse and its chunks; ``extra`` (title, comma-separated tags) is the caller's
    metadata, which counts as the user's own like frontmatter."""
    title = extra.get("title") or parsed.title
    extra_tags = {t for t in extra.get("tags", "").split(",") if t}
    user = set(parsed.user_fields) | ({"title"} if extra.get("title") else set()) | ({"tags"} if extra_tags else set())
    return NewDocument(doc_id, project, path, title, parsed.type, sorted(set(parsed.tags) | extra_tags), parsed.media_type, digest,
                       parsed.warnings, parsed.created, root, size, chunks, sorted(user), parsed.kind, parsed.body_hash, enrich)


def dedup_texts(doc: NewDocument) -> list[str]:
    """What the near-duplicate check embeds: the first chunks as embed stores them (context, then text)."""
    return [f"{ctx}\n{c.text}" if ctx else c.text for c, ctx in zip(doc.chunks, chunk_contexts(doc), strict=True)][:DEDUP_TEXTS]


def in_file(chunks: Iterable[Chunk], piece: Slice, first_ord: int) -> list[Chunk]:
    """A slice's chunks with their ordinals, characters and lines counted from the start of the whole file."""
    return [dataclasses.replace(c, ord=first_ord + i, char_start=c.char_start + piece.char_offset, char_end=c.char_end + piece.char_offset,
                                line_start=c.line_start + piece.line_offset, line_end=c.line_end + piece.line_offset)
            for i, c in enumerate(chunks)]


def job_counts(files: Sequence[Mapping[str, Any]]) -> ingest_pb2.JobCounts:
    """A job's files counted by state, with their chunks and embedded chunks."""
    counts = ingest_pb2.JobCounts(files=len(files))
    for f in files:
        setattr(counts, f["state"], getattr(counts, f["state"]) + 1)
        counts.chunks += f["chunks"]
        counts.chunks_embedded += min(f["chunks"], f["embedded_chunks"]) if f["state"] in ("chunked", "embedded") else 0
    return counts


def state_counts(states: Sequence[Mapping[str, Any]]) -> ingest_pb2.JobCounts:
    """A job's counts from its files grouped by state (``state``, ``n``, ``chunks``, ``embedded_chunks``)."""
    counts = ingest_pb2.JobCounts(files=sum(s["n"] for s in states))
    for s in states:
        setattr(counts, s["state"], s["n"])
        counts.chunks += s["chunks"]
        counts.chunks_embedded += s["embedded_chunks"]
    return counts


def job_done(finished: bool, files: Sequence[Mapping[str, Any]]) -> bool:
    """Every file (or group of files by state) has reached a final state and the job has stopped adding files."""
    return finished and all(f["state"] in TERMINAL for f in files)


def document_proto(row: Mapping[str, Any]) -> ingest_pb2.Document:
    return ingest_pb2.Document(document_id=str(row["id"]), path=row["path"], project=row["project"], title=row["title"],
                               type=row["type"], tags=row["tags"], created_at=timestamp(row["created_at"]),
                               updated_at=timestamp(row["updated_at"]), content_hash=row["content_hash"], chunks=row["n"],
                               warnings=row["warnings"], enrichment=enrichment_proto(row))


def backlog(chunks_waiting: int, chunks_per_minute: float, enrich_waiting: int, enrich_deferred: int,
            enriched_per_minute: float) -> ingest_pb2.Backlog:
    """The background work left, with an ETA at the recent pace (0 when nothing waits or nothing was done lately)."""
    def eta(waiting: int, per_minute: float) -> float:
        return round(60 * waiting / per_minute, 1) if waiting and per_minute > 0 else 0.0

    return ingest_pb2.Backlog(chunks_waiting=chunks_waiting, chunks_per_minute=chunks_per_minute, embed_eta_s=eta(chunks_waiting, chunks_per_minute),
                              enrich_waiting=enrich_waiting, enrich_deferred=enrich_deferred, enriched_per_minute=enriched_per_minute,
                              enrich_eta_s=eta(enrich_waiting, enriched_per_minute))
