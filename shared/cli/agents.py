"""`tessera mcp` (the MCP server on stdio, for coding agents) and `tessera capture` (a quick note from the shell)."""

from __future__ import annotations

import argparse
import asyncio
import sys

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
