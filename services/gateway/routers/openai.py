"""The OpenAI-compatible surface: models, chat completions (answered from your notes), embeddings."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from services.gateway import convert
from services.gateway.deps import AUTH, Gateway, gateway, in_scope
from services.gateway.routers.chat import collect, event_stream
from services.gateway.schemas import COMPLETIONS_SSE, ChatCompletionIn, EmbeddingsIn
from services.gateway.translate import OpenAISSE
from shared.errors import InvalidArgument, NotFound

log = logging.getLogger("tessera.gateway")
MAX_EMBED_INPUTS = 256
router = APIRouter(tags=["openai"], dependencies=AUTH)


@router.get("/v1/models")
async def models(g: Gateway = Depends(gateway)) -> dict[str, Any]:
    chat_model, embed_model = await g.mesh.chat_model(), await g.mesh.embed_model()
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "tessera"}
                                       for m in (chat_model.name, embed_model.model_id)]}


@router.post("/v1/chat/completions", responses=COMPLETIONS_SSE)
async def completions(body: ChatCompletionIn, g: Gateway = Depends(gateway)) -> Response:
    """OpenAI chat completions, answered from your notes (rag: true by default). Each chunk carries a `citations`
    list (new citations in it); the last one carries `sources` and `conversation_id`."""
    in_scope(body.filters.project if body.filters is not None else "")
    name = (await g.mesh.chat_model()).name
    model = "" if body.model in ("tessera", name) else body.model
    stream = await g.mesh.client.chat(convert.completion_pb(body, model), transport=g.mesh.transport)
    completion_id = "chatcmpl-" + uuid.uuid4().hex
    if not body.stream:
        answer = await collect(stream)
        assert answer.done is not None  # collect raised otherwise
        citations = [convert.citation_json(c) for c in answer.citations]
        return JSONResponse(convert.completion_json(completion_id, name, answer.text, citations, answer.done))
    usage = bool(body.stream_options and body.stream_options.include_usage)
    return event_stream(g, stream, OpenAISSE(completion_id, name, usage))


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingsIn, g: Gateway = Depends(gateway)) -> Response:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_EMBED_INPUTS:
        raise InvalidArgument(f"input must hold 1 to {MAX_EMBED_INPUTS} texts; it holds {len(texts)}")
    info = await g.mesh.embed_model()
    if body.dimensions is not None and body.dimensions != info.dim:
        raise InvalidArgument(f"dimensions must be {info.dim} for {info.model_id} (it cannot be shortened)")
    if body.model not in (info.model_id, "tessera"):
        raise ModelNotFound(f"no embedding model {body.model!r}; this server runs {info.model_id!r}")
    started = time.monotonic()
    reply = await g.mesh.client.embed(texts, model=info.model_id)
    log.debug("embeddings", extra={"texts": len(texts), "ms": round((time.monotonic() - started) * 1000, 1)})
    tokens = sum(len(t.split()) for t in texts)  # words: the gateway does not load the embedding tokenizer
    return JSONResponse({"object": "list", "model": reply.model_id,
                         "data": [convert.embedding_json(list(v.values), i, body.encoding_format) for i, v in enumerate(reply.vectors)],
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


class ModelNotFound(NotFound):
    """OpenAI clients recognise an unknown model by the code ``model_not_found``."""

    error_code = "model_not_found"
