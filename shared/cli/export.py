"""`tessera export DIR`: every document as a markdown file with its metadata in the frontmatter, a folder per project.

An Obsidian or basic-memory user opens the folder as a vault: the frontmatter holds the title, type, tags, project,
created, the enrichment (kind, summary, auto_tags, entities as "Name (kind)"), the related notes as [[wiki links]], where
the note came from (``source``) and its id (``tessera_id``). `tessera ingest DIR` of the folder brings the same
documents back with the same metadata: each keeps its id and its enrichment (no model is asked again), and a note whose
document is here already is not stored twice.

The body is the document's text without its own frontmatter (its other keys are kept); a PDF's is its extracted text.
Reads are the export's own (``export=True``): they do not count as a person opening the document.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from typing import Any

import yaml

from shared.client import Client, StatusError
from shared.gen.tessera.v1 import ingest_pb2
from shared.runtime.config import Settings
from shared.runtime.files import slug
from shared.tools.progress import console

PAGE = 500
READ_LINES = 5000
#: Frontmatter keys the export writes; a document's own other keys are kept beside them.
OURS = ("title", "type", "tags", "project", "created", "updated", "kind", "summary", "auto_tags", "entities", "related", "source",
        "tessera_id")
_FRONTMATTER_END = re.compile(r"^---[ \t]*$")


def split_frontmatter(lines: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(the document's own frontmatter, its body lines)."""
    if not lines or not _FRONTMATTER_END.match(lines[0]):
        return {}, lines
    for i in range(1, len(lines)):
        if _FRONTMATTER_END.match(lines[i]):
            try:
                meta = yaml.safe_load("\n".join(lines[1:i])) or {}
            except yaml.YAMLError:
                meta = {}
            return (meta if isinstance(meta, dict) else {}), lines[i + 1:]
    return {}, lines


def frontmatter(doc: ingest_pb2.Document, own: dict[str, Any], related: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: v for k, v in own.items() if k not in OURS}
    meta.update({"title": doc.title, "type": doc.type, "tags": list(doc.tags), "project": doc.project,
                 "created": doc.created_at.ToDatetime().isoformat() + "Z", "updated": doc.updated_at.ToDatetime().isoformat() + "Z"})
    e = doc.enrichment
    if e.state == "enriched":
        meta.update({"kind": e.kind, "summary": e.summary, "auto_tags": list(e.tags),
                     "entities": [f"{x.name} ({x.kind})" if x.kind else x.name for x in e.entities]})
    if related:
        meta["related"] = related
    meta.update({"source": doc.path, "tessera_id": doc.document_id})
    return meta


async def all_documents(client: Client, project: str) -> list[ingest_pb2.Document]:
    docs: list[ingest_pb2.Document] = []
    while True:
        page = await client.documents(project=project, limit=PAGE, offset=len(docs))
        docs.extend(page.documents)
        if len(page.documents) < PAGE:
            return docs


async def text_of(client: Client, document_id: str) -> list[str]:
    lines: list[str] = []
    while True:
        part = await client.read_document(document_id, from_line=len(lines) + 1, max_lines=READ_LINES, export=True)
        lines.extend(part.lines)
        if not part.truncated or not part.lines:
            return lines


async def export(settings: Settings, folder: Path, project: str = "") -> dict[str, Any]:
    """Write every document (of ``project``, or all) under ``folder``; what was written and what could not be."""
    folder.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    async with Client(settings) as client:
        docs = await all_documents(client, project)
        names: dict[str, str] = {}  # document id → its file's path under the folder, without .md
        taken: set[str] = set()
        for d in sorted(docs, key=lambda d: (d.project, d.created_at.ToNanoseconds(), d.document_id)):
            base = f"{slug(d.project) if d.project else '_no-project'}/{slug(d.title or Path(d.path).stem)}"
            name, n = base, 1
            while name in taken:
                n += 1
                name = f"{base}-{n}"
            taken.add(name)
            names[d.document_id] = name
        for d in docs:
            try:
                own, body = split_frontmatter(await text_of(client, d.document_id))
                links = (await client.related(d.document_id, limit=10)).related
            except StatusError as exc:
                skipped.append(f"{d.path}: {exc}")
                continue
            related = [f"[[{names[r.document_id].rsplit('/', 1)[-1]}]]" for r in links if r.document_id in names]
            meta = frontmatter(d, own, related)
            path = folder / f"{names[d.document_id]}.md"
            path.parent.mkdir(parents=True, exist_ok=True)
            text = "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n" + "\n".join(body).strip("\n") + "\n"
            path.write_text(text, encoding="utf-8")
            written += 1
    return {"documents": len(docs), "written": written, "skipped": skipped, "folder": str(folder)}


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(export(settings, Path(args.dir).expanduser().resolve(), args.project))
    console.print(f"[green]✓[/] {result['written']} of {result['documents']} documents written as markdown under {result['folder']}")
    for line in result["skipped"]:
        console.print(f"[yellow]not exported[/] {line}", highlight=False)
    return 0 if not result["skipped"] else 1


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="every document as markdown with frontmatter (a folder per project; opens as an Obsidian vault)")
    p.add_argument("dir", help="the folder to write (made if missing)")
    p.add_argument("--project", default="", help="only this project's documents")
    p.set_defaults(fn=cmd_export)
