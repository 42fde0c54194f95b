"""Chat: streamed answers with citations (server-sent events), and stored conversations.

A streamed answer is admitted (validated, queued, retrieved) before its 200 is
sent, so those errors keep their status; after that, a failure arrives as an
``error`` event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from services.gateway import convert
from services.gateway.deps import AUTH, Gateway, gateway, in_scope
from services.gateway.schemas import CHAT_SSE, ChatIn, ConversationPatch
from services.gateway.sse import SSE_HEADERS, relay_batches
from services.gateway.translate import NativeSSE, OpenAISSE
from shared.client import Answer, StatusError, Unavailable
from shared.client._rpc import EventStream
from shared.client.events import ChatEvent

router = APIRouter(tags=["chat"], dependencies=AUTH)


async def collect(stream: EventStream[ChatEvent]) -> Answer:
    """A whole answer (for ``stream: false``); an error event raises its StatusError."""
    answer = Answer()
    async for event in stream:
        answer.add(event)
    if answer.done is None:
        raise Unavailable("chat: the answer ended early")
    return answer


def event_stream(g: Gateway, stream: EventStream[ChatEvent], sse: NativeSSE | OpenAISSE) -> StreamingResponse:
    """The answer through the bounded relay (keep-alives in quiet spells), translated for the client."""

    async def body() -> AsyncIterator[bytes]:
        g.streams.open += 1
        try:
            async with contextlib.aclosing(relay_batches(stream, g.settings.chat.stream_buffer, g.settings.gateway.keepalive_s,
                                                         cancel=stream.cancel)) as batches:
                async for batch in batches:
                    chunks = [chunk for item in batch for chunk in sse.feed(item)]  # what arrived together, written once
                    if chunks:
                        yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
        except StatusError as exc:
            yield sse.error(exc)
            return
        finally:
            g.streams.open -= 1
        for chunk in sse.end():
            yield chunk

    # the conversation is known once the question is admitted: a client can rename, list or stop it before the answer ends
    headers = {**SSE_HEADERS, **({"X-Conversation-Id": stream.conversation_id} if stream.conversation_id else {})}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


@router.post("/api/v1/chat", responses=CHAT_SSE)
async def chat(body: ChatIn, g: Gateway = Depends(gateway)) -> Response:
    """Ask a question. Streamed (default): server-sent events `token`, `citation`, `done` or `error`,
    with `: keep-alive` comments while the answer is being prepared."""
    in_scope(body.filters.project if body.filters is not None else "")
    stream = await g.mesh.client.chat(convert.chat_pb(body), transport=g.mesh.transport)
    if not body.stream:
        answer = await collect(stream)
        assert answer.done is not None  # collect raised otherwise
        return JSONResponse({"answer": answer.text, "citations": [convert.citation_json(c) for c in answer.citations],
                             "steps": [convert.step_json(s) for s in answer.steps], **convert.done_json(answer.done)})
    return event_stream(g, stream, NativeSSE())


@router.get("/api/v1/conversations")
async def conversations(limit: int = Query(50, ge=1, le=500),
                        purpose: Literal["user", "eval", "bench", "all"] = Query("user", description="Whose: `all` for every purpose."),
                        g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """The latest conversations first, a person's own (`user`) unless `purpose` asks for the tools' runs."""
    reply = await g.mesh.client.conversations(limit, purpose)
    return {"conversations": [convert.conversation_summary_json(c) for c in reply.conversations]}


@router.get("/api/v1/conversations/{conversation_id}")
async def conversation(conversation_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return convert.conversation_json(await g.mesh.client.conversation(conversation_id))


@router.patch("/api/v1/conversations/{conversation_id}")
async def rename_conversation(conversation_id: str, body: ConversationPatch, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Rename a conversation."""
    return convert.conversation_summary_json(await g.mesh.client.rename_conversation(conversation_id, body.title))


@router.delete("/api/v1/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Delete a conversation and its messages (409 while one of its answers is being generated)."""
    return {"deleted": conversation_id, "messages": await g.mesh.client.delete_conversation(conversation_id)}



