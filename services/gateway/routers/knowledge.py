"""Knowledge: capture notes, follow ingest jobs, read documents, search, related documents."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from services.gateway import convert
from services.gateway.deps import AUTH, Gateway, gateway
from services.gateway.schemas import FiltersIn, NoteIn, SearchIn
from shared.errors import InvalidArgument

router = APIRouter(tags=["knowledge"], dependencies=AUTH)


@router.post("/api/v1/notes", status_code=201)
async def capture(note: NoteIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Write a markdown note (with frontmatter) into the notes folder and index it."""
    path, reply = await g.mesh.capture(note)
    return {"document_id": reply.file.document_id, "path": str(path), "job_id": reply.job_id,
            "state": convert.FILE_STATES.get(reply.file.state, "unknown"), "chunks": reply.file.chunks}


@router.get("/api/v1/jobs/{job_id}")
async def job(job_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Ingest status: counts and every file's state."""
    return convert.job_json(await g.mesh.client.job(job_id))


@router.get("/api/v1/documents/{document_id}")
async def document(document_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return convert.document_json(await g.mesh.client.document(document_id))


@router.post("/api/v1/search")
async def search(body: SearchIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Hybrid search: hits with fused and per-signal scores, and where each came from."""
    return convert.search_json(await g.mesh.client.search(convert.search_pb(body)))


@router.get("/api/v1/search")
async def search_get(q: str = Query(min_length=1, max_length=8192), top_k: int = Query(10, ge=1, le=100),
                     mode: str = Query("hybrid", pattern="^(hybrid|lexical|vector)$"), project: str = Query("", max_length=200),
                     explain: bool = False, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    body = SearchIn(query=q, top_k=top_k, mode=mode, filters=FiltersIn(project=project) if project else None,  # type: ignore[arg-type]
                    explain=explain)
    return convert.search_json(await g.mesh.client.search(convert.search_pb(body)))


@router.get("/api/v1/related")
async def related(document_id: str = Query("", max_length=64), path: str = Query("", max_length=4096),
                  limit: int = Query(10, ge=1, le=100), g: Gateway = Depends(gateway)) -> Response:
    """Documents linked to one (by its id or path), best first."""
    if bool(document_id) == bool(path):
        raise InvalidArgument("give exactly one of document_id or path")
    reply = await g.mesh.client.related(document_id, path=path, limit=limit)
    return JSONResponse({"related": [{"document_id": r.document_id, "title": r.title, "path": r.path, "score": r.score}
                                     for r in reply.related]})
