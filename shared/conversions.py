"""Every conversion between wire types and Python values that more than one service makes, in one place:
timestamps, ids, text checks, citations and a document row's enrichment. Nothing else builds or parses these."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from shared.errors import InvalidArgument
from shared.gen.tessera.v1 import chat_pb2, common_pb2, ingest_pb2

# -- timestamps -------------------------------------------------------------------------------------------------------


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    """A datetime as a protobuf Timestamp (None stays None: the field is left unset)."""
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


def to_datetime(ts: Timestamp) -> dt.datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=dt.UTC)


# -- ids and text -------------------------------------------------------------------------------------------------------


def maybe_id(value: str) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def parse_id(value: str, what: str, component: str) -> uuid.UUID:
    """``value`` as a UUID; InvalidArgument ("<component>: 'x' is not a <what> id") when it is not one."""
    out = maybe_id(value)
    if out is None:
        raise InvalidArgument(f"{component}: {value[:80]!r}{'…' if len(value) > 80 else ''} is not a {what} id")
    return out


def check_text(component: str, **fields: str | Sequence[str]) -> None:
    """PostgreSQL text and file paths cannot hold a NUL character: such a field is the caller's mistake, said so."""
    for name, value in fields.items():
        if any("\x00" in v for v in ([value] if isinstance(value, str) else value)):
            raise InvalidArgument(f"{component}: {name} contains a NUL character")


# -- citations ----------------------------------------------------------------------------------------------------------


def source_json(s: common_pb2.SourceRef) -> dict[str, Any]:
    return {"chunk_id": s.chunk_id, "document_id": s.document_id, "title": s.title, "path": s.path, "line_start": s.line_start,
            "line_end": s.line_end, "char_start": s.char_start, "char_end": s.char_end, "heading_path": list(s.heading_path)}


def citation_json(c: Any) -> dict[str, Any]:
    """A citation (chat_pb2.Citation, or the client SDK's Citation) as JSON: the stored form and the HTTP one."""
    return {"number": c.number, **source_json(c.source), "score": round(c.score, 6), "origin": c.origin}


def citation_from_json(d: Mapping[str, Any]) -> chat_pb2.Citation:
    ref = common_pb2.SourceRef(chunk_id=d.get("chunk_id", ""), document_id=d.get("document_id", ""), title=d.get("title", ""),
                               path=d.get("path", ""), line_start=d.get("line_start", 0), line_end=d.get("line_end", 0),
                               char_start=d.get("char_start", 0), char_end=d.get("char_end", 0), heading_path=d.get("heading_path", []))
    return chat_pb2.Citation(number=d.get("number", 0), source=ref, score=d.get("score", 0.0), origin=d.get("origin", ""))


def sentence_json(s: chat_pb2.SentenceSupport) -> dict[str, Any]:
    """A sentence of an answer and its support, as JSON: the stored form and the HTTP one."""
    return {"start": s.start, "end": s.end, "support": s.support, "number": s.number, "share": round(s.share, 4),
            "source": source_json(s.source) if s.HasField("source") else None}


def sentence_from_json(d: Mapping[str, Any]) -> chat_pb2.SentenceSupport:
    out = chat_pb2.SentenceSupport(start=d.get("start", 0), end=d.get("end", 0), support=d.get("support", ""), number=d.get("number", 0),
                                   share=d.get("share", 0.0))
    if d.get("source"):
        out.source.CopyFrom(citation_from_json(d["source"]).source)
    return out


# -- documents ------------------------------------------------------------------------------------------------------------


def enrichment_proto(row: Mapping[str, Any]) -> common_pb2.Enrichment:
    """A document row's enrichment columns (kind, summary, auto_tags, entities, enrich_state, enrich_reason) as the proto."""
    return common_pb2.Enrichment(
        kind=row.get("kind") or "", summary=row.get("summary") or "", tags=row.get("auto_tags") or [],
        entities=[common_pb2.Entity(name=str(e.get("name", "")), kind=str(e.get("kind", ""))) for e in row.get("entities") or []],
        state=row.get("enrich_state") or "", reason=row.get("enrich_reason") or "")


def backlog_json(b: ingest_pb2.Backlog) -> dict[str, Any]:
    """Background work left (embedding, enrichment), its pace over the last ten minutes and the ETA at that pace."""
    return {"chunks_waiting": b.chunks_waiting, "chunks_per_minute": round(b.chunks_per_minute, 1), "embed_eta_s": b.embed_eta_s,
            "enrich_waiting": b.enrich_waiting, "enrich_deferred": b.enrich_deferred,
            "enriched_per_minute": round(b.enriched_per_minute, 2), "enrich_eta_s": b.enrich_eta_s}
