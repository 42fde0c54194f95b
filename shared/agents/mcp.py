"""Tessera as an MCP server: the memory of coding agents and assistants.

One server definition, two transports: stdio (``tessera mcp``, for Claude Code,
Cursor and the like) and streamable HTTP (mounted by the gateway at ``/mcp``).
Every tool calls the running mesh through the client SDK and loads no model.
A tool's bad input, or a refusal by the mesh, is a tool error (``isError``) with
one sentence, never a protocol error or a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar, cast

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from shared.agents.mcp_models import (
    AskOut,
    CaptureOut,
    Cited,
    Count,
    DeleteOut,
    DocumentOut,
    EditOut,
    MultiGetOut,
    RecentDoc,
    RecentOut,
    RelatedDoc,
    RelatedOut,
    SearchHit,
    SearchOut,
    ServiceState,
    Signal,
    Skipped,
    StatusOut,
)
from shared.client import Client, StatusError
from shared.errors import TesseraError
from shared.gen.tessera.v1 import ingest_pb2
from shared.runtime import principal
from shared.runtime.config import Settings
from shared.runtime.status import mesh_status

INSTRUCTIONS = """Tessera is the user's knowledge base: their notes and documents, chunked, embedded and linked.
- `search` first, for anything the user may have written down (decisions, how-tos, project notes). Hits carry
  path:line_start-line_end; quote them as sources.
- `get` reads a document (by id or path) with line numbers; `multi_get` reads several (paths or a glob) within a byte budget.
- `ask` gives a cited answer from the notes (slower: it runs the local model); prefer `search` + your own reading when speed matters.
- `capture` saves something worth remembering as a markdown note (it warns about near-duplicates); `edit` changes a
  captured note and `delete` removes one; `recent` shows what
  changed lately; `related` shows linked documents; `status` says whether the mesh is healthy.
Resources: tessera://doc/{id} is a document's text."""

#: The most bytes multi_get returns in one call.
MAX_BYTES_LIMIT = 1_000_000
#: A captured note this similar (cosine) to an existing chunk is reported as a near-duplicate.
DUPLICATE_COSINE = 0.95
#: How long the list of projects is trusted before it is read again.
PROJECTS_TTL_S = 5.0

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def _ref(path: str, start: int, end: int) -> str:
    return f"{path}:{start}-{end}"


def _as_tool_errors(fn: F) -> F:
    """The mesh's refusals (and unreachable services) as tool errors with their sentence."""
    @functools.wraps(fn)
    async def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except StatusError as exc:
            raise ToolError(exc.message) from None
        except TesseraError as exc:
            raise ToolError(str(exc)) from None

    return cast(F, wrapped)


def _result(text: str, out: BaseModel) -> CallToolResult:
    """Readable text for the model, and the same as structured content for programs."""
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=out.model_dump(mode="json"))


def _numbered(doc: ingest_pb2.DocumentText) -> DocumentOut:
    width = len(str(doc.from_line + max(0, len(doc.lines) - 1)))
    text = "\n".join(f"{doc.from_line + i:>{width}}  {line}" for i, line in enumerate(doc.lines))
    d = doc.document
    return DocumentOut(document_id=d.document_id, path=d.path, title=d.title, project=d.project, from_line=doc.from_line,
                       to_line=doc.from_line + len(doc.lines) - 1, total_lines=doc.total_lines, truncated=doc.truncated, text=text,
                       content_hash=d.content_hash)


def _allowed(tool: str, project: str | None = None, *, writes: bool = False) -> None:
    """The caller's role and projects (over HTTP, the gateway's edge set whom this MCP request acts for; over stdio, the
    admin key's system): a reader may not save, edit or delete, and no one reaches a project their key does not
    (``project`` None: the tool names none; what it touches by id, row-level security keeps in scope)."""
    who = principal.current.get()
    if writes and not who.can_write():
        raise ToolError(f"{tool}: {who.name} is a reader; saving, editing and deleting notes need a writer key")
    if project is not None and (refusal := who.unreachable(project, writes=writes)) is not None:
        raise ToolError(f"{tool}: {refusal}")


class Tools:
    """The tools, over one SDK client (``client()`` gives it; the gateway's own, or the stdio process's)."""

    def __init__(self, client: Callable[[], Client], settings: Settings) -> None:
        self.client, self.settings = client, settings
        self._projects: dict[str, tuple[float, set[str]]] = {}  # by the caller's scope: each sees only their projects

    async def _check_project(self, project: str) -> None:
        if not project:
            return
        scope = principal.current.get().scope()
        at, known = self._projects.get(scope, (0.0, set()))
        if project not in known or time.monotonic() - at > PROJECTS_TTL_S:
            lib = await self.client().library()
            known = {p.name for p in lib.projects}
            if len(self._projects) > 1000:
                self._projects.clear()
            self._projects[scope] = (time.monotonic(), known)
        if project not in known:
            raise ToolError(f"no project named {project!r}; the projects are: {', '.join(sorted(known)) or 'none yet'}")

    @_as_tool_errors
    async def search(self, query: str, project: str = "", types: list[str] | None = None, tags: list[str] | None = None,
                     mode: Literal["hybrid", "lexical", "vector"] = "hybrid", limit: int = Field(10, ge=1, le=50),
                     min_score: float = 0.0, recency_half_life_days: float = Field(0.0, ge=0, le=36_500)) -> Annotated[CallToolResult, SearchOut]:
        """Search the notes (hybrid: words and meaning). Returns hits with path:lines, title, snippet, score, each signal, and the
        note's kind, summary and tags. types matches a type or a kind (insight, snippet, decision, bug, reference);
        recency_half_life_days > 0 favours newer notes."""
        if not query.strip():
            raise ToolError("search: the query is empty; say what to look for")
        _allowed("search", project)
        await self._check_project(project)
        reply = await self.client().search(query, project=project, types=types or [], tags=tags or [], mode=mode, top_k=limit,
                                           recency_half_life_days=recency_half_life_days)
        hits = [SearchHit(ref=_ref(h.source.path, h.source.line_start, h.source.line_end), document_id=h.source.document_id,
                          path=h.source.path, line_start=h.source.line_start, line_end=h.source.line_end, title=h.source.title,
                          snippet=h.snippet, score=h.score, signals={s.name: Signal(score=s.score, rank=s.rank) for s in h.signals},
                          kind=h.enrichment.kind, summary=h.enrichment.summary, tags=list(dict.fromkeys([*h.tags, *h.enrichment.tags])))
                for h in reply.hits if h.score >= min_score]
        lines = [f"{i}. {h.title} ({h.ref}) score {h.score:.4f}\n   {h.snippet.replace(chr(10), ' ')}" for i, h in enumerate(hits, 1)]
        text = "\n".join(lines) if hits else f"No notes match {query!r}."
        if reply.degraded:
            text = f"Note: {reply.degraded}\n{text}"
        return _result(text, SearchOut(hits=hits, took_ms=round(reply.took_ms, 2), degraded=reply.degraded))

    @_as_tool_errors
    async def get(self, document: str, from_line: int = Field(1, ge=1), max_lines: int = Field(200, ge=1, le=5000)
                  ) -> Annotated[CallToolResult, DocumentOut]:
        """Read a document by its id or its path, with line numbers (from_line, at most max_lines lines)."""
        if not document.strip():
            raise ToolError("get: give a document id or a path")
        by_path = "/" in document
        doc = await self.client().read_document(document if not by_path else "", path=document if by_path else "",
                                                from_line=from_line, max_lines=max_lines)
        out = _numbered(doc)
        more = f"\n… {out.total_lines - out.to_line} more lines (from_line={out.to_line + 1})" if out.truncated else ""
        return _result(f"{out.title} — {out.path} (lines {out.from_line}-{out.to_line} of {out.total_lines})\n{out.text}{more}", out)

    @_as_tool_errors
    async def multi_get(self, paths: list[str] | None = None, glob: str = "", max_bytes: int = 50_000) -> Annotated[CallToolResult, MultiGetOut]:
        """Read several documents, by paths or a glob on their paths (e.g. "*/projects/tessera/*.md"), within max_bytes."""
        if max_bytes < 1 or max_bytes > MAX_BYTES_LIMIT:
            raise ToolError(f"multi_get: max_bytes is {max_bytes}; it must be 1 to {MAX_BYTES_LIMIT}")
        if bool(paths) == bool(glob):
            raise ToolError("multi_get: give either paths or a glob")
        targets = list(paths or [])
        if glob:
            targets = [d.path for d in (await self.client().documents(path_glob=glob, limit=200)).documents]
        documents: list[DocumentOut] = []
        skipped: list[Skipped] = []
        used = 0
        for path in targets:
            try:
                doc = _numbered(await self.client().read_document(path=path, max_lines=5000))
            except StatusError as exc:
                skipped.append(Skipped(path=path, reason=exc.message))
                continue
            size = len(doc.text.encode())
            if used + size > max_bytes:
                skipped.append(Skipped(path=path, reason=f"{size} bytes would pass max_bytes ({max_bytes}); {max_bytes - used} left"))
                continue
            used += size
            documents.append(doc)
        text = "\n\n".join(f"== {d.path}\n{d.text}" for d in documents)
        if skipped:
            text += "\n\nSkipped:\n" + "\n".join(f"- {s.path}: {s.reason}" for s in skipped)
        return _result(text or "Nothing matched.", MultiGetOut(documents=documents, skipped=skipped, bytes=used))

    @_as_tool_errors
    async def capture(self, title: str, body: str, tags: list[str] | None = None, project: str = "",
                      type: str = "note", force: bool = False) -> Annotated[CallToolResult, CaptureOut]:
        """Save a markdown note (title, body, tags, project, type) and index it. A repeat of (any part of) a note of the same
        project is not saved (duplicate: true, with the existing note) unless force; a similar note is warned about."""
        if not title.strip() or not body.strip():
            raise ToolError("capture: a note needs a title and a body")
        _allowed("capture", project, writes=True)
        similar = await self.client().search(f"{title}\n{body}", mode="vector", top_k=3, project=project)
        near = [SearchHit(ref=_ref(h.source.path, h.source.line_start, h.source.line_end), document_id=h.source.document_id,
                          path=h.source.path, line_start=h.source.line_start, line_end=h.source.line_end, title=h.source.title,
                          snippet=h.snippet, score=h.score, signals={})
                for h in similar.hits if h.score >= DUPLICATE_COSINE]
        reply = await self.client().capture(title, body, tags=tags or [], project=project, type=type, force=force)
        if reply.duplicate:
            existing = SearchHit(ref=reply.path, document_id=reply.document_id, path=reply.path, line_start=0, line_end=0, title="",
                                 snippet="", score=reply.similarity, signals={})
            warning = f"a repeat of {reply.path} ({reply.similarity:.0%} of its word triples are there); not saved"
            out = CaptureOut(document_id=reply.document_id, path=reply.path, job_id=reply.job_id, near_duplicates=[existing, *near],
                             warning=warning, duplicate=True, similarity=reply.similarity)
            return _result(f"Not saved: {reply.path} (document {reply.document_id}) already holds this text ({reply.similarity:.0%} of its "
                           "word triples). Call capture with force=true to save it anyway.", out)
        warning = (f"near-duplicate of {near[0].title} ({near[0].ref}, cosine {near[0].score:.3f})" if near else "")
        out = CaptureOut(document_id=reply.document_id, path=reply.path, job_id=reply.job_id, near_duplicates=near, warning=warning)
        return _result(f"Saved {reply.path} (document {reply.document_id})." + (f" Warning: {warning}." if warning else ""), out)

    @_as_tool_errors
    async def related(self, document: str, limit: int = Field(10, ge=1, le=50)) -> Annotated[CallToolResult, RelatedOut]:
        """Documents linked to one (by id or path), most similar first."""
        by_path = "/" in document
        reply = await self.client().related(document if not by_path else "", path=document if by_path else "", limit=limit)
        out = RelatedOut(related=[RelatedDoc(document_id=r.document_id, title=r.title, path=r.path, score=r.score) for r in reply.related])
        text = "\n".join(f"- {r.title} ({r.path}) {r.score:.3f}" for r in out.related) or "No related documents."
        return _result(text, out)

    @_as_tool_errors
    async def recent(self, project: str = "", limit: int = Field(10, ge=1, le=100)) -> Annotated[CallToolResult, RecentOut]:
        """What was captured or changed most recently, in a project or everywhere."""
        _allowed("recent", project)
        await self._check_project(project)
        docs = (await self.client().documents(project=project, limit=limit)).documents
        out = RecentOut(documents=[RecentDoc(document_id=d.document_id, path=d.path, title=d.title, project=d.project, type=d.type,
                                             updated_at=d.updated_at.ToJsonString()) for d in docs])
        text = "\n".join(f"- {d.updated_at[:19]} {d.title} ({d.path})" for d in out.documents) or "Nothing yet."
        return _result(text, out)

    @_as_tool_errors
    async def status(self) -> Annotated[CallToolResult, StatusOut]:
        """Whether every service of the mesh is up, and how much is indexed."""
        report, lib = await asyncio.gather(mesh_status(self.settings), self.client().library())
        out = StatusOut(ok=bool(report["ok"]), services=[ServiceState(service=s["service"], status=s["status"], detail=s.get("detail", ""))
                                                         for s in report["services"]],
                        documents=lib.documents, chunks=lib.chunks, chunks_embedded=lib.chunks_embedded,
                        projects=[Count(name=p.name, documents=p.documents) for p in lib.projects])
        text = (f"{'All services are up' if out.ok else 'Some services are down'}: "
                + ", ".join(f"{s.service} {s.status}" for s in out.services)
                + f". {out.documents} documents, {out.chunks_embedded}/{out.chunks} chunks embedded.")
        return _result(text, out)

    @_as_tool_errors
    async def ask(self, question: str, project: str = "", timeout_s: float = Field(120.0, gt=0, le=600)
                  ) -> Annotated[CallToolResult, AskOut]:
        """A cited answer from the notes by the local model (not streamed); gives up after timeout_s."""
        if not question.strip():
            raise ToolError("ask: the question is empty")
        _allowed("ask", project)
        await self._check_project(project)
        try:
            answer = await asyncio.wait_for(self.client().ask(question, project=project), timeout_s)
        except TimeoutError:
            raise ToolError(f"ask: no answer within {timeout_s:g} s (the model may be busy); try again, or raise timeout_s") from None
        done = answer.done
        assert done is not None  # ask raises otherwise
        cited = [Cited(number=c.number, ref=_ref(c.source.path, c.source.line_start, c.source.line_end), title=c.source.title)
                 for c in answer.citations]
        out = AskOut(answer=answer.text, citations=cited, finish_reason=done.finish_reason, conversation_id=done.conversation_id)
        sources = "\n".join(f"[{c.number}] {c.title} ({c.ref})" for c in cited)
        return _result(answer.text + (f"\n\nSources:\n{sources}" if sources else ""), out)

    @_as_tool_errors
    async def delete(self, document: str) -> Annotated[CallToolResult, DeleteOut]:
        """Delete a note by id: from the index, vectors and cache at once, a capture's file too; citations keep the number."""
        _allowed("delete", writes=True)
        reply = await self.client().delete_document(document)
        if not reply.deleted:
            raise ToolError(f"delete: no document {document}")
        return _result(f"Deleted {document}" + (" and its file." if reply.file_removed else "; its imported file stays."),
                       DeleteOut(document_id=document, file_removed=reply.file_removed))

    @_as_tool_errors
    async def edit(self, document: str, title: str | None = None, body: str | None = None, tags: list[str] | None = None,
                   type: str | None = None, content_hash: str = "") -> Annotated[CallToolResult, EditOut]:
        """Change a captured note by id: its title, whole body (markdown), tags or type; what is left out stays. An imported
        file is refused (edit it where it lies). content_hash (from get) refuses the edit if the note changed since."""
        _allowed("edit", writes=True)
        reply = await self.client().edit_note(document, title=title, body=body, tags=tags, type=type, content_hash=content_hash)
        return _result(f"Edited {reply.path} (document {reply.document_id}); it is being indexed again.",
                       EditOut(document_id=reply.document_id, path=reply.path, job_id=reply.job_id, content_hash=reply.content_hash))

    async def document_resource(self, id: str) -> str:
        """A document's text, by id."""
        try:
            doc = await self.client().read_document(id, max_lines=5000)
        except StatusError as exc:
            raise ResourceNotFoundError(exc.message) from None
        return "\n".join(doc.lines)


def build_server(client: Callable[[], Client], settings: Settings) -> MCPServer[Any]:
    """The MCP server: its tools (annotated read-only or not), the document resource and the instructions."""
    tools = Tools(client, settings)
    server: MCPServer[Any] = MCPServer(name="tessera", title="Tessera", instructions=INSTRUCTIONS, version="0.1.0")
    for fn, hints in ((tools.search, READ_ONLY), (tools.get, READ_ONLY), (tools.multi_get, READ_ONLY), (tools.capture, WRITES),
                      (tools.related, READ_ONLY), (tools.recent, READ_ONLY), (tools.status, READ_ONLY), (tools.ask, READ_ONLY),
                      (tools.edit, WRITES), (tools.delete, DESTRUCTIVE)):
        server.tool(annotations=hints)(fn)
    server.resource("tessera://doc/{id}", name="document", mime_type="text/plain")(tools.document_resource)
    return server


async def serve_stdio(settings: Settings) -> None:
    """``tessera mcp``: the server on stdin/stdout, one SDK client for the process."""
    client = Client(settings)
    try:
        await build_server(lambda: client, settings).run_stdio_async()
    finally:
        await client.close()
