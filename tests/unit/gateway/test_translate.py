"""The one ChatEvent → event-stream translator, for Tessera's own events and for OpenAI's chunks."""

from __future__ import annotations

import json

from services.gateway.sse import KEEPALIVE, SSE_KEEPALIVE
from services.gateway.translate import NativeSSE, OpenAISSE
from shared.client import Citation, Done, Token
from shared.errors import ResourceExhausted, Unavailable
from shared.gen.tessera.v1 import common_pb2

REF = common_pb2.SourceRef(path="/n/kettle.md", line_start=3, line_end=9, title="Kettle", document_id="d1")
CITE = Citation(1, REF, 0.5, "model")
DONE = Done("stop", 40, 7, "conv-1", "msg-1", 812.3456, 12.0, (CITE,))


def parse(raw: bytes) -> tuple[str, object]:
    event, data = "", None
    for line in raw.decode().splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:] if line[6:] == "[DONE]" else json.loads(line[6:])
    return event, data


def test_native_events() -> None:
    sse = NativeSSE()
    assert sse.feed(KEEPALIVE) == [SSE_KEEPALIVE]
    assert parse(sse.feed(Token("Use citric acid [1]", 3, (1,)))[0]) == ("token", {"text": "Use citric acid [1]", "index": 3, "citations": [1]})
    kind, data = parse(sse.feed(CITE)[0])
    assert kind == "citation" and data == {"number": 1, "chunk_id": "", "document_id": "d1", "title": "Kettle", "path": "/n/kettle.md",
                                           "line_start": 3, "line_end": 9, "char_start": 0, "char_end": 0, "heading_path": [],
                                           "score": 0.5, "origin": "model"}
    kind, done = parse(sse.feed(DONE)[0])
    assert kind == "done" and isinstance(done, dict)
    assert done["finish_reason"] == "stop" and done["conversation_id"] == "conv-1" and done["duration_ms"] == 812.35
    assert [s["path"] for s in done["sources"]] == ["/n/kettle.md"]
    assert parse(sse.error(Unavailable("chat: the answer stream broke"))) == (
        "error", {"code": "UNAVAILABLE", "message": "chat: the answer stream broke"})
    assert sse.end() == []


def test_openai_chunks_carry_citations_on_the_next_content_and_sources_at_the_end() -> None:
    sse = OpenAISSE("chatcmpl-1", "qwen", usage=True)
    assert sse.feed(CITE) == []  # held for the next content chunk
    _, first = parse(sse.feed(Token("Use", 0))[0])
    assert isinstance(first, dict)
    assert first["choices"][0]["delta"] == {"content": "Use", "role": "assistant"} and first["citations"][0]["number"] == 1
    _, second = parse(sse.feed(Token(" it", 1))[0])
    assert isinstance(second, dict) and second["citations"] == [] and second["choices"][0]["delta"] == {"content": " it"}
    last, usage = (parse(b)[1] for b in sse.feed(DONE))
    assert isinstance(last, dict) and isinstance(usage, dict)
    assert last["choices"][0]["finish_reason"] == "stop" and last["conversation_id"] == "conv-1"
    assert usage["usage"] == {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47, "prompt_tokens_details": {"cached_tokens": 0}}
    assert [parse(b)[1] for b in sse.end()] == ["[DONE]"]


def test_openai_errors_use_the_openai_error_shape_with_the_http_status() -> None:
    _, body = parse(OpenAISSE("c", "m", usage=False).error(ResourceExhausted("chat: busy", retry_after=2)))
    assert body == {"error": {"message": "chat: busy", "type": "rate_limit_error", "code": "RESOURCE_EXHAUSTED", "param": None, "status": 429}}
    assert OpenAISSE("c", "m", usage=False).feed(KEEPALIVE) == [SSE_KEEPALIVE]
