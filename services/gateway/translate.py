"""ChatEvent → the bytes of an event stream, written once for both surfaces; no I/O.

* Native (``/api/v1/chat``): named events ``token``, ``citation``, ``step`` (research mode), ``done``, ``error``.
* OpenAI (``/v1/chat/completions``): ``chat.completion.chunk`` objects; citations ride on the next content chunk;
  the last chunk carries ``sources`` and ``conversation_id``; then ``[DONE]``.

An error is a StatusError (the SDK raises the error frames of the stream as one);
both translators turn it into their own error shape, carrying its code.
"""

from __future__ import annotations

from typing import Any

from services.gateway import convert
from services.gateway.sse import KEEPALIVE, SSE_KEEPALIVE, sse_data, sse_event
from shared.client import Citation, Done, StatusError, Step, Token
from shared.client.events import ChatEvent


class NativeSSE:
    """Tessera's own event stream."""

    def feed(self, event: ChatEvent | object) -> list[bytes]:
        if event is KEEPALIVE:
            return [SSE_KEEPALIVE]
        if isinstance(event, Token):
            return [sse_event("token", {"text": event.text, "index": event.index, "citations": list(event.citations)})]
        if isinstance(event, Citation):
            return [sse_event("citation", convert.citation_json(event))]
        if isinstance(event, Done):
            return [sse_event("done", convert.done_json(event))]
        if isinstance(event, Step):
            return [sse_event("step", convert.step_json(event))]
        return []

    def error(self, exc: StatusError) -> bytes:
        return sse_event("error", {"code": exc.code, "message": exc.message})

    def end(self) -> list[bytes]:
        return []


class OpenAISSE:
    """OpenAI's chunk stream for one completion."""

    def __init__(self, completion_id: str, model: str, usage: bool) -> None:
        self.chunks = convert.CompletionChunks(completion_id, model)
        self.usage = usage
        self.pending: list[dict[str, Any]] = []

    def feed(self, event: ChatEvent | object) -> list[bytes]:
        if event is KEEPALIVE:
            return [SSE_KEEPALIVE]
        if isinstance(event, Citation):
            self.pending.append(convert.citation_json(event))
            return []
        if isinstance(event, Token):
            out = sse_data(self.chunks.content(event.text, self.pending))
            self.pending = []
            return [out]
        if isinstance(event, Done):
            return [sse_data(self.chunks.done(event))] + ([sse_data(self.chunks.usage(event))] if self.usage else [])
        return []

    def error(self, exc: StatusError) -> bytes:
        return sse_data(convert.error_body(exc.http_status, exc.message, exc.code))

    def end(self) -> list[bytes]:
        return [sse_data("[DONE]")]
