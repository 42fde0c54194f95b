"""`tessera mcp` (the MCP server on stdio, for coding agents), `tessera capture` (a quick note from the shell) and
`tessera edit` (change a captured note: its fields, or its body in $EDITOR)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from shared.agents.mcp import serve_stdio
from shared.client import Client
from shared.errors import InvalidArgument
from shared.runtime.config import Settings


def cmd_mcp(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(serve_stdio(settings))
    return 0


async def capture(settings: Settings, text: str, title: str, tags: list[str], project: str, kind: str, force: bool = False) -> str:
    body = text.strip()
    if not body:
        raise InvalidArgument("capture: the note is empty; give its text as an argument or on standard input")
    first = body.splitlines()[0].lstrip("# ").strip()
    async with Client(settings) as client:
        reply = await client.capture(title or first[:80], body, tags=tags, project=project, type=kind, force=force)
    if reply.duplicate:
        return (f"not saved: a repeat of {reply.path} (document {reply.document_id}, {reply.similarity:.0%} of its word triples are there);"
                " --force saves it")
    return f"{reply.path} (document {reply.document_id})"


def cmd_capture(settings: Settings, args: argparse.Namespace) -> int:
    text = " ".join(args.text) if args.text else sys.stdin.read()
    print(asyncio.run(capture(settings, text, args.title, args.tag, args.project, args.type, args.force)))
    return 0


def _in_editor(text: str) -> str:
    """``text`` after a person edited it in $VISUAL or $EDITOR (vi when neither is set)."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    with tempfile.TemporaryDirectory(prefix="tessera-edit-") as tmp:
        path = Path(tmp) / "note.md"
        path.write_text(text)
        if subprocess.run([*shlex.split(editor), str(path)], check=False).returncode != 0:
            raise InvalidArgument(f"edit: {editor} exited with an error; nothing was changed")
        return path.read_text()


async def edit(settings: Settings, args: argparse.Namespace) -> str:
    async with Client(settings) as client:
        body: str | None = None
        content_hash = ""
        if args.body_file:
            body = sys.stdin.read() if args.body_file == "-" else Path(args.body_file).read_text()
        elif args.body is not None:
            body = args.body
        elif args.editor:
            doc = await client.read_document(args.document_id, max_lines=5000)
            if doc.truncated:
                raise InvalidArgument(f"edit: the note has {doc.total_lines} lines, more than the editor is given (5000); "
                                      "use --body-file with the whole new body")
            content_hash = doc.document.content_hash
            lines = list(doc.lines)
            skip = 0
            if lines and lines[0].strip() == "---":  # the frontmatter stays as it is; --title, --tag and --type change it
                skip = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
            old = "\n".join(lines[skip:]).strip()
            body = (await asyncio.to_thread(_in_editor, old + "\n")).strip()
            if body == old:
                return "nothing changed"
        tags = [] if args.no_tags else (args.tag or None)
        if body is None and args.title is None and tags is None and args.type is None:
            raise InvalidArgument("edit: say what changes: --title, --tag, --no-tags, --type, --body, --body-file or --editor")
        reply = await client.edit_note(args.document_id, title=args.title, body=body, tags=tags, type=args.type, content_hash=content_hash)
    return f"{reply.path} (document {reply.document_id}) edited; indexing again (job {reply.job_id})"


def cmd_edit(settings: Settings, args: argparse.Namespace) -> int:
    print(asyncio.run(edit(settings, args)))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mcp", help="serve Tessera to an agent over MCP on stdin/stdout (Claude Code, Cursor, Claude Desktop)")
    p.set_defaults(fn=cmd_mcp)
    p = sub.add_parser("capture", help="save a markdown note and index it (text as arguments, or on standard input)")
    p.add_argument("text", nargs="*")
    p.add_argument("--title", default="", help="default: the first line")
    p.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    p.add_argument("--project", default="")
    p.add_argument("--type", default="note")
    p.add_argument("--force", action="store_true", help="save it even when it nearly duplicates a note of the same project")
    p.set_defaults(fn=cmd_capture)
    p = sub.add_parser("edit", help="change a captured note (an imported file is edited where it lies): its title, tags, type or body")
    p.add_argument("document_id")
    p.add_argument("--title")
    p.add_argument("--tag", action="append", help="the note's tags become these (repeatable)")
    p.add_argument("--no-tags", action="store_true", help="remove every tag")
    p.add_argument("--type")
    p.add_argument("--body", help="the whole new body (markdown)")
    p.add_argument("--body-file", help="the new body from a file ('-': standard input)")
    p.add_argument("--editor", action="store_true", help="edit the body in $VISUAL or $EDITOR; refused if the note changed meanwhile")
    p.set_defaults(fn=cmd_edit)
