"""Chat's sources as citations: the prompt's Source in its protobuf and stored (JSON) forms (shared.conversions
holds the wire forms every service shares); no I/O."""

from __future__ import annotations

from typing import Any

from services.chat.prompt import Source
from services.chat.support import Sentence
from shared.conversions import citation_json as wire_citation_json
from shared.conversions import timestamp
from shared.gen.tessera.v1 import chat_pb2, common_pb2


def source_ref(s: Source) -> common_pb2.SourceRef:
    return common_pb2.SourceRef(chunk_id=s.chunk_id, document_id=s.document_id, title=s.title, path=s.path, line_start=s.line_start,
                                line_end=s.line_end, char_start=s.char_start, char_end=s.char_end, heading_path=list(s.heading_path))


def citation(s: Source, origin: str = "") -> chat_pb2.Citation:
    return chat_pb2.Citation(number=s.number, source=source_ref(s), score=s.score, origin=origin)


def sentence(s: Sentence, by_number: dict[int, Source]) -> chat_pb2.SentenceSupport:
    """A sentence's support as the proto: its source's reference narrowed to the supporting lines."""
    out = chat_pb2.SentenceSupport(start=s.start, end=s.end, number=s.number, share=s.share,
                                   support="" if s.supported is None else "supported" if s.supported else "unsupported")
    if s.supported and s.number in by_number:
        out.source.CopyFrom(source_ref(by_number[s.number]))
        out.source.line_start, out.source.line_end = s.line_start, s.line_end
    return out


def citation_json(s: Source, origin: str) -> dict[str, Any]:
    """The stored form of a citation: the same JSON the HTTP surfaces give."""
    return wire_citation_json(citation(s, origin))


def conversation_pb(row: dict[str, Any], messages: list[chat_pb2.StoredMessage] | None = None) -> chat_pb2.Conversation:
    """A conversations row (chat.store.CONVERSATION_COLUMNS) as its message, with ``messages`` when given."""
    return chat_pb2.Conversation(conversation_id=str(row["id"]), title=str(row["title"]), created_at=timestamp(row["created_at"]),
                                 updated_at=timestamp(row["updated_at"]), purpose=str(row["purpose"]), messages=messages or [])
