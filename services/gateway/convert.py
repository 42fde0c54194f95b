"""Between HTTP bodies and the mesh's protos, and the OpenAI wire shapes; no I/O."""

from __future__ import annotations

import base64
import time
from typing import Any

import grpc
import numpy as np

from services.gateway.schemas import ChatCompletionIn, ChatIn, FiltersIn, OpenAIMessage, SearchIn
from shared.client import Done, Step
from shared.conversions import citation_json, sentence_json, source_json, timestamp
from shared.gen.tessera.v1 import chat_pb2, common_pb2, ingest_pb2, search_pb2
from shared.runtime.analyzer import highlights

#: gRPC status → HTTP status, for errors from the mesh.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
MODES = {"hybrid": search_pb2.SEARCH_MODE_HYBRID, "lexical": search_pb2.SEARCH_MODE_LEXICAL, "vector": search_pb2.SEARCH_MODE_VECTOR}
FILE_STATES = {v: k.removeprefix("FILE_STATE_").lower() for k, v in ingest_pb2.FileState.items()}


def error_type(status: int) -> str:
    return {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}.get(status, "api_error")


def error_body(status: int, message: str, code: str = "") -> dict[str, Any]:
    """The one error shape, OpenAI's: {"error": {"message", "type", "code", "param"}} plus the HTTP status."""
    return {"error": {"message": message, "type": error_type(status), "code": code or None, "param": None, "status": status}}


def filters_pb(f: FiltersIn | None) -> common_pb2.Filters:
    if f is None:
        return common_pb2.Filters()
    out = common_pb2.Filters(project=f.project, types=f.types, tags=f.tags)
    for name in ("created_after", "created_before", "updated_after", "updated_before"):
        value = getattr(f, name)
        if value is not None:
            getattr(out, name).CopyFrom(timestamp(value))
    return out


def search_pb(body: SearchIn) -> search_pb2.SearchRequest:
    return search_pb2.SearchRequest(query=body.query, top_k=body.top_k, mode=MODES[body.mode], filters=filters_pb(body.filters),
                                    bypass_cache=body.bypass_cache, explain=body.explain,
                                    recency_half_life_days=body.recency_half_life_days)


def signal_json(s: search_pb2.Signal) -> dict[str, Any]:
    out: dict[str, Any] = {"score": s.score, "rank": s.rank}
    if s.contribution:
        out["contribution"] = s.contribution
    if s.terms:
        out["terms"] = {t.term: t.weight for t in s.terms}
    return out


def search_json(r: search_pb2.SearchResponse, query: str = "") -> dict[str, Any]:
    """Hits with their source, scores and signals; ``highlights`` are the snippet's character spans that match the query."""
    return {"hits": [{**source_json(h.source), "snippet": h.snippet, "highlights": highlights(h.snippet, query) if query else [],
                      "score": h.score, "project": h.project, "type": h.type,
                      "tags": list(h.tags), "signals": {s.name: signal_json(s) for s in h.signals},
                      "enrichment": enrichment_json(h.enrichment), "updated_at": h.updated_at.ToJsonString(),
                      "recency": round(h.recency, 6)} for h in r.hits],
            "index_generation": r.index_generation, "took_ms": round(r.took_ms, 3), "cached": r.cached,
            **({"degraded": r.degraded} if r.degraded else {})}


def job_json(j: ingest_pb2.IngestJob) -> dict[str, Any]:
    c = j.counts
    return {"job_id": j.job_id, "root": j.root, "project": j.project, "done": j.done,
            "counts": {k: getattr(c, k) for k in ("files", "queued", "chunked", "embedded", "failed", "unchanged", "deleted", "chunks",
                                                  "chunks_embedded")},
            "files": [{"path": f.path, "document_id": f.document_id, "state": FILE_STATES.get(f.state, "unknown"), "reason": f.reason,
                       "chunks": f.chunks, "chunks_embedded": f.chunks_embedded, "warnings": list(f.warnings)} for f in j.files]}


def chunk_span_json(c: ingest_pb2.ChunkSpan) -> dict[str, Any]:
    return {"chunk_id": c.chunk_id, "ord": c.ord, "line_start": c.line_start, "line_end": c.line_end, "heading_path": list(c.heading_path),
            "chars": c.chars, "embedded": c.embedded}


def document_json(d: ingest_pb2.Document) -> dict[str, Any]:
    return {"document_id": d.document_id, "path": d.path, "project": d.project, "title": d.title, "type": d.type, "tags": list(d.tags),
            "created_at": d.created_at.ToJsonString(), "updated_at": d.updated_at.ToJsonString(), "chunks": d.chunks,
            "warnings": list(d.warnings), "content_hash": d.content_hash, "enrichment": enrichment_json(d.enrichment)}


def enrichment_json(e: common_pb2.Enrichment) -> dict[str, Any]:
    out: dict[str, Any] = {"state": e.state, "kind": e.kind, "summary": e.summary, "tags": list(e.tags),
                           "entities": [{"name": x.name, "kind": x.kind} for x in e.entities]}
    if e.title:
        out["title"] = e.title
    if e.reason:
        out["reason"] = e.reason
    return out


def map_json(m: search_pb2.MapResponse) -> dict[str, Any]:
    return {"clusters": [{"cluster_id": c.cluster_id, "project": c.project, "name": c.name, "terms": list(c.terms), "size": c.size,
                          "new_documents": c.new_documents, "created_at": c.created_at.ToJsonString(),
                          "examples": [{"document_id": x.document_id, "title": x.title, "path": x.path, "similarity": round(x.score, 4)}
                                       for x in c.examples]} for c in m.clusters],
            "merges": [{"a": x.a, "b": x.b, "similarity": round(x.similarity, 4)} for x in m.merges], "unassigned": m.unassigned,
            "clustered_at": m.clustered_at.ToJsonString() if m.HasField("clustered_at") else None,
            "runs": [{"project": r.project, "documents": r.documents, "clusters": r.clusters, "silhouette": round(r.silhouette, 4),
                      "at": r.at.ToJsonString()} for r in m.runs],
            "points": [{"document_id": p.document_id, "title": p.title, "path": p.path, "project": p.project, "cluster_id": p.cluster_id,
                        "x": round(p.x, 4), "y": round(p.y, 4), "created_at": p.created_at.ToJsonString()} for p in m.points],
            "points_left_out": m.points_left_out}


def conversation_summary_json(c: chat_pb2.Conversation) -> dict[str, Any]:
    return {"conversation_id": c.conversation_id, "title": c.title, "purpose": c.purpose, "created_at": c.created_at.ToJsonString(),
            "updated_at": c.updated_at.ToJsonString()}


def conversation_json(c: chat_pb2.Conversation) -> dict[str, Any]:
    return {**conversation_summary_json(c),
            "messages": [{"message_id": m.message_id, "role": m.role, "content": m.content, "created_at": m.created_at.ToJsonString(),
                          "citations": [citation_json(x) for x in m.citations], "sentences": [sentence_json(x) for x in m.sentences]}
                         for m in c.messages]}


def done_json(d: Done) -> dict[str, Any]:
    return {"finish_reason": d.finish_reason, "conversation_id": d.conversation_id, "message_id": d.message_id,
            "prompt_tokens": d.prompt_tokens, "completion_tokens": d.completion_tokens, "duration_ms": round(d.duration_ms, 2),
            "retrieval_ms": round(d.retrieval_ms, 2), "cached_tokens": d.cached_tokens, "prefill_ms": round(d.prefill_ms, 2),
            "sources": [citation_json(s) for s in d.sources],
            "sentences": [sentence_json(s) for s in d.sentences], **({"text": d.text} if d.text else {})}


# -- chat requests -------------------------------------------------------------

def chat_pb(body: ChatIn, max_tokens_default: int = 0) -> chat_pb2.ChatRequest:
    messages = [chat_pb2.ChatMessage(role="system", content=body.system)] if body.system else []
    messages.append(chat_pb2.ChatMessage(role="user", content=body.question))
    return chat_pb2.ChatRequest(conversation_id=body.conversation_id or "", messages=messages, rag=body.rag,
                                top_k_sources=body.top_k_sources or 0, filters=filters_pb(body.filters), max_tokens=body.max_tokens or 0,
                                temperature=body.temperature or 0.0, top_p=body.top_p or 0.0, seed=body.seed or 0, stop=body.stop or [],
                                purpose=body.purpose, mode=body.mode)


def message_text(m: OpenAIMessage) -> str:
    return m.content if isinstance(m.content, str) else "".join(p.text for p in m.content)


def completion_pb(body: ChatCompletionIn, model: str) -> chat_pb2.ChatRequest:
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    messages = [chat_pb2.ChatMessage(role="system" if m.role == "developer" else m.role, content=message_text(m)) for m in body.messages]
    return chat_pb2.ChatRequest(conversation_id=body.conversation_id or "", messages=messages, rag=body.rag, top_k_sources=body.top_k_sources or 0,
                                filters=filters_pb(body.filters), max_tokens=body.max_completion_tokens or body.max_tokens or 0,
                                temperature=body.temperature or 0.0, top_p=body.top_p or 0.0,
                                seed=body.seed or 0, stop=stop, model=model, purpose=body.purpose, mode=body.mode)


# -- OpenAI shapes -------------------------------------------------------------

def finish_reason(reason: str) -> str:
    return "length" if reason == "length" else "stop"


class CompletionChunks:
    """Builds the `chat.completion.chunk` objects of one streamed answer."""

    def __init__(self, completion_id: str, model: str) -> None:
        self.id, self.model, self.created = completion_id, model, int(time.time())
        self.started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}

    def content(self, text: str, citations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        delta: dict[str, Any] = {"content": text}
        if not self.started:
            delta["role"] = "assistant"
            self.started = True
        return self._chunk(delta, citations=citations or [])

    def done(self, done: Done) -> dict[str, Any]:
        delta: dict[str, Any] = {} if self.started else {"role": "assistant", "content": ""}
        return self._chunk(delta, finish_reason(done.finish_reason), citations=[], conversation_id=done.conversation_id,
                           sources=[citation_json(s) for s in done.sources])

    def usage(self, done: Done) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": [],
                "usage": usage_json(done)}


def step_json(s: Step) -> dict[str, Any]:
    return {"kind": s.kind, "text": s.text, "new_sources": s.new_sources, "ms": round(s.ms, 1)}


def usage_json(done: Done) -> dict[str, Any]:
    """OpenAI's usage object, with the prompt tokens the model's cache held (``prompt_tokens_details.cached_tokens``)."""
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": done.cached_tokens}}


def completion_json(completion_id: str, model: str, answer: str, citations: list[dict[str, Any]], done: Done) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": finish_reason(done.finish_reason),
                         "logprobs": None}],
            "usage": usage_json(done), "citations": citations, "sources": [citation_json(s) for s in done.sources],
            "conversation_id": done.conversation_id}


def embedding_json(values: list[float], index: int, encoding: str) -> dict[str, Any]:
    data: Any = values
    if encoding == "base64":
        data = base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()
    return {"object": "embedding", "index": index, "embedding": data}
