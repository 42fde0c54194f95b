"""Sources and citations between their prompt, protobuf and stored (JSON) forms; no I/O."""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from services.chat.prompt import Source
from shared.gen.tessera.v1 import chat_pb2, common_pb2


def timestamp(value: Any) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def source_ref(s: Source) -> common_pb2.SourceRef:
    return common_pb2.SourceRef(chunk_id=s.chunk_id, document_id=s.document_id, title=s.title, path=s.path, line_start=s.line_start,
                                line_end=s.line_end, char_start=s.char_start, char_end=s.char_end, heading_path=list(s.heading_path))


def citation(s: Source, origin: str = "") -> chat_pb2.Citation:
    return chat_pb2.Citation(number=s.number, source=source_ref(s), score=s.score, origin=origin)


def citation_json(s: Source, origin: str) -> dict[str, Any]:
    return {"number": s.number, "chunk_id": s.chunk_id, "document_id": s.document_id, "title": s.title, "path": s.path,
            "line_start": s.line_start, "line_end": s.line_end, "char_start": s.char_start, "char_end": s.char_end,
            "heading_path": list(s.heading_path), "score": s.score, "origin": origin}


def citation_from_json(d: dict[str, Any]) -> chat_pb2.Citation:
    ref = common_pb2.SourceRef(chunk_id=d.get("chunk_id", ""), document_id=d.get("document_id", ""), title=d.get("title", ""),
                               path=d.get("path", ""), line_start=d.get("line_start", 0), line_end=d.get("line_end", 0),
                               char_start=d.get("char_start", 0), char_end=d.get("char_end", 0), heading_path=d.get("heading_path", []))
    return chat_pb2.Citation(number=d.get("number", 0), source=ref, score=d.get("score", 0.0), origin=d.get("origin", ""))
