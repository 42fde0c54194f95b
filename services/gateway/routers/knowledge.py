"""Knowledge: capture notes, follow ingest jobs, read documents, search, related documents."""

from __future__ import annotations

import asyncio
import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import JSONResponse, Response

from services.gateway import convert, render
from services.gateway.deps import AUTH, Gateway, gateway, in_scope
from services.gateway.notes import idempotent_name
from services.gateway.review import write_review
from services.gateway.schemas import EnrichDeferredIn, EnrichIn, FiltersIn, IngestIn, MarkdownIn, NoteEdit, NoteIn, ReviewIn, SearchIn
from shared.contracts import window_days
from shared.conversions import backlog_json
from shared.errors import InvalidArgument, NotFound

router = APIRouter(tags=["knowledge"], dependencies=AUTH)


@router.post("/api/v1/notes", status_code=201, responses={200: {"description": "A repeat of a note of the same project: "
                                                                              "nothing was stored; the existing note (duplicate: true)"}})
async def capture(note: NoteIn, g: Gateway = Depends(gateway),
                  idempotency_key: str | None = Header(None, alias="Idempotency-Key", pattern=r"^[A-Za-z0-9_.\-]{8,64}$",
                                                       description="A client's key for this capture: a retry with the same "
                                                                   "key replaces the same note instead of adding another.")) -> Response:
    """Write a markdown note (with frontmatter) into the notes folder and index it. A repeat of a note of the same project
    (one note holds TESSERA_DEDUP_THRESHOLD or more of its word triples: the same text, nearly, or any part of that
    note) is not stored: 200 with ``duplicate: true``, the existing note and that share as ``similarity``, unless
    ``force``. With an ``Idempotency-Key``, the note's file is named by the key, so a capture
    retried after a cut connection (stored or not the first time) leaves one note."""
    in_scope(note.project, writes=True)
    path, reply = await g.mesh.capture(note, name=idempotent_name(note, idempotency_key) if idempotency_key else "")
    if reply.duplicate:
        return JSONResponse({"document_id": reply.existing.document_id, "path": str(path), "job_id": reply.job_id, "duplicate": True,
                             "similarity": round(reply.similarity, 4), "existing": convert.document_json(reply.existing)})
    return JSONResponse({"document_id": reply.file.document_id, "path": str(path), "job_id": reply.job_id, "duplicate": False,
                         "state": convert.FILE_STATES.get(reply.file.state, "unknown"), "chunks": reply.file.chunks}, status_code=201)


@router.get("/api/v1/jobs/{job_id}")
async def job(job_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Ingest status: counts and every file's state."""
    return convert.job_json(await g.mesh.client.job(job_id))


@router.get("/api/v1/jobs")
async def jobs(limit: int = Query(20, ge=1, le=200), files: bool = True, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Recent ingest jobs, newest first, with every file's state and the reason of each failure."""
    reply = await g.mesh.client.jobs(limit=limit, include_files=files)
    return {"jobs": [{**convert.job_json(j), "created_at": j.created_at.ToJsonString(),
                      "finished_at": j.finished_at.ToJsonString() if j.HasField("finished_at") else None} for j in reply.jobs]}


@router.post("/api/v1/ingest", status_code=202)
async def ingest(body: IngestIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Start ingesting a file or folder under the allowed roots (TESSERA_INGEST_ROOTS); follow it at /api/v1/jobs/{job_id}."""
    if not body.path.startswith("/"):  # the SDK would resolve it against the gateway's working directory
        raise InvalidArgument(f"ingest: {body.path!r} must be an absolute path")
    in_scope(body.project, writes=True)
    return convert.job_json(await g.mesh.client.ingest_path(body.path, project=body.project))


@router.get("/api/v1/library")
async def library(g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Projects, types and tags with their document counts, and the size of the index."""
    lib = await g.mesh.client.library()

    def counts(rows: Any) -> list[dict[str, Any]]:
        return [{"name": r.name, "documents": r.documents} for r in rows]

    return {"projects": counts(lib.projects), "types": counts(lib.types), "tags": counts(lib.tags), "documents": lib.documents,
            "chunks": lib.chunks, "chunks_embedded": lib.chunks_embedded, "backlog": backlog_json(lib.backlog)}


@router.get("/api/v1/documents")
async def documents(project: str = Query("", max_length=200), glob: str = Query("", max_length=4096),
                    limit: int = Query(50, ge=1, le=500), g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Documents, most recently changed first, by project and a path pattern (``*``, ``?``)."""
    in_scope(project)
    reply = await g.mesh.client.documents(project=project, path_glob=glob, limit=limit)
    return {"documents": [convert.document_json(d) for d in reply.documents]}


@router.get("/api/v1/documents/{document_id}")
async def document(document_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return convert.document_json(await g.mesh.client.document(document_id))


@router.delete("/api/v1/documents/{document_id}")
async def delete_document(document_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Delete a note: from the index, the vectors and the search cache at once; a capture's file too (an imported file
    stays where it is); stored answers keep the citation's number, marked deleted. Snapshots keep it until retention
    deletes the last one that holds it."""
    reply = await g.mesh.client.delete_document(document_id)
    if not reply.deleted:
        raise NotFound(f"ingest: no document {document_id}")
    return {"deleted": document_id, "file_removed": reply.file_removed}


@router.patch("/api/v1/documents/{document_id}")
async def edit_document(document_id: str, edit: NoteEdit, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Edit a note Tessera wrote (a capture): a new title, body, tags or type; what is left out stays. Its file is
    rewritten and indexed again under the same id (enrichment follows). An imported file is the person's own: 409, edit
    it where it lies. With ``content_hash`` (the note's as it was opened), an edit of a note changed since is refused (409)."""
    path, reply = await g.mesh.edit_note(document_id, edit)
    return {"document_id": reply.file.document_id, "path": str(path), "job_id": reply.job_id,
            "state": convert.FILE_STATES.get(reply.file.state, "unknown"), "chunks": reply.file.chunks,
            "content_hash": reply.file.content_hash}


@router.get("/api/v1/documents/{document_id}/view")
async def document_view(document_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """What the web page shows of a document: its lines, its frontmatter, its body rendered as blocks with their line
    ranges, its chunks (what the index sees), and whether the page may edit it (a capture shown whole)."""
    text = await g.mesh.client.read_document(document_id, chunks=True)
    lines = list(text.lines)
    meta, raw, skip = render.split_frontmatter(lines) if text.from_line == 1 else (None, "", 0)
    markdown = text.document.path.lower().endswith((".md", ".markdown", ".txt"))
    blocks = await asyncio.to_thread(render.markdown_blocks, lines[skip:], text.from_line + skip) if markdown else [
        render.Block(text.from_line + skip + i, text.from_line + skip + i, f"<p>{html.escape(line)}</p>")
        for i, line in enumerate(lines[skip:]) if line.strip()]
    return {"document": convert.document_json(text.document), "from_line": text.from_line, "lines": lines,
            "total_lines": text.total_lines, "truncated": text.truncated, "frontmatter": meta, "frontmatter_raw": raw,
            "frontmatter_lines": skip, "blocks": [{"start": b.start, "end": b.end, "html": b.html} for b in blocks],
            "chunks": [convert.chunk_span_json(c) for c in text.chunks],
            "editable": not text.truncated and Path(text.document.path).resolve().is_relative_to(g.mesh.notes_dir)}


@router.post("/api/v1/markdown")
async def markdown(body: MarkdownIn) -> dict[str, str]:
    """Markdown rendered to HTML (raw HTML in it is shown as text)."""
    return {"html": await asyncio.to_thread(render.render_html, body.text)}  # a worker thread: the event loop serves others


@router.post("/api/v1/search")
async def search(body: SearchIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Hybrid search: hits with fused and per-signal scores, and where each came from."""
    in_scope(body.filters.project if body.filters is not None else "")
    return convert.search_json(await g.mesh.client.search(convert.search_pb(body)), body.query)


@router.get("/api/v1/search")
async def search_get(q: str = Query(min_length=1, max_length=8192), top_k: int = Query(10, ge=1, le=100),
                     mode: str = Query("hybrid", pattern="^(hybrid|lexical|vector)$"), project: str = Query("", max_length=200),
                     explain: bool = False, recency_half_life_days: float = Query(0.0, ge=0, le=36_500),
                     g: Gateway = Depends(gateway)) -> dict[str, Any]:
    body = SearchIn.model_validate({"query": q, "top_k": top_k, "mode": mode, "filters": FiltersIn(project=project) if project else None,
                                    "explain": explain, "recency_half_life_days": recency_half_life_days})
    return convert.search_json(await g.mesh.client.search(convert.search_pb(body)), body.query)


@router.get("/api/v1/related")
async def related(document_id: str = Query("", max_length=64), path: str = Query("", max_length=4096),
                  limit: int = Query(10, ge=1, le=100), g: Gateway = Depends(gateway)) -> Response:
    """Documents linked to one (by its id or path), best first."""
    if bool(document_id) == bool(path):
        raise InvalidArgument("give exactly one of document_id or path")
    reply = await g.mesh.client.related(document_id, path=path, limit=limit)
    return JSONResponse({"related": [{"document_id": r.document_id, "title": r.title, "path": r.path, "score": r.score}
                                     for r in reply.related]})


@router.get("/api/v1/map")
async def topic_map(project: str = Query("", max_length=200), rebuild: bool = False, examples: int = Query(3, ge=0, le=50),
                    since: str = Query("7d", pattern=r"^\d{1,5}(\.\d+)?[dhw]?$"), points: bool = False,
                    g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Topic clusters (named by their most distinctive terms) with sizes, new members and closest documents; merge
    suggestions; each project's clustering quality (silhouette); with ``points``, every note's place on the map."""
    return convert.map_json(await g.mesh.client.map(project=project, rebuild=rebuild, examples=examples, since_days=window_days(since),
                                                    points=points))


@router.get("/api/v1/stale")
async def stale(project: str = Query("", max_length=200), days: int = Query(0, ge=0, le=36_500), limit: int = Query(50, ge=1, le=1000),
                g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Notes nobody changed or found in a search for ``days`` days (0: TESSERA_STALE_DAYS)."""
    in_scope(project)
    r = await g.mesh.client.stale(project=project, days=days, limit=limit)
    return {"days": r.days, "total": r.total, "documents": [
        {"document_id": d.document_id, "title": d.title, "path": d.path, "updated_at": d.updated_at.ToJsonString(),
         "last_hit": d.last_hit.ToJsonString() if d.HasField("last_hit") else None} for d in r.documents]}


@router.get("/api/v1/review")
async def review_preview(since: str = Query("7d", pattern=r"^\d{1,5}(\.\d+)?[dhw]?$"), project: str = Query("", max_length=200),
                         g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """The review of the window as markdown, not saved."""
    in_scope(project)
    r, _, _ = await write_review(g.mesh, window_days(since), project, save=False)
    return {"title": r.title, "markdown": r.markdown, "since": r.since.ToJsonString(), "saved": None}


@router.post("/api/v1/review")
async def review(body: ReviewIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """The review of the window, saved as a note of type ``review`` in the notes folder (so it is searchable)."""
    in_scope(body.project, writes=body.save)
    r, path, doc = await write_review(g.mesh, window_days(body.since), body.project, save=body.save)
    return {"title": r.title, "markdown": r.markdown, "since": r.since.ToJsonString(),
            "saved": {"path": str(path), "document_id": doc} if path else None}


@router.post("/api/v1/enrich")
async def enrich(body: EnrichIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Type, title, summary, tags and entities through the chat backend: a stored document (the result is stored) or a text."""
    if bool(body.document_id) == bool(body.text.strip()):
        raise InvalidArgument("give exactly one of document_id or text")
    return convert.enrichment_json(await g.mesh.client.enrich(body.document_id, text=body.text, title=body.title))


@router.post("/api/v1/enrich/deferred")
async def enrich_deferred(body: EnrichDeferredIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Queue the enrichment that a large folder import left for later (over TESSERA_ENRICH_IMPORT_MAX files): of the
    documents listed, else of a project, else of every one. ``queued``: how many were waiting."""
    in_scope(body.project)
    return {"queued": await g.mesh.client.enrich_deferred(body.document_ids, project=body.project)}


@router.get("/api/v1/watch")
async def watch(g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """The folders kept in sync with the index (TESSERA_WATCH_ROOTS), with the documents indexed from each, and the ingest
    instance that watches them."""
    w = await g.mesh.client.watch_status()
    return {"roots": [{"path": r.path, "documents": r.documents} for r in w.roots], "leader": w.leader or None}

