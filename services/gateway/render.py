"""Markdown for the web page, rendered on the server: blocks that keep their source line numbers.

A document view shows each top-level block (heading, paragraph, list, code,
table) beside the line numbers it came from, so a citation's ``path:a-b`` can
be highlighted exactly. Raw HTML in notes is shown as text, never run, and
markdown-it refuses ``javascript:`` links. No I/O.

markdown-it is linear but slow on some inputs (about 10 s per MB of empty headings): only the first RENDER_CHARS
characters of a request are rendered as markdown, the rest is shown as escaped text, so no note holds a gateway
worker for more than a fraction of a second (``make bench-parse``, step ``render``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

from shared.runtime.yamlplain import load_plain

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")
#: Characters of one request rendered as markdown; the rest is shown as escaped text.
RENDER_CHARS = 64_000


@dataclass
class Block:
    start: int  # first line, 1-based, in the file
    end: int  # last line
    html: str


def split_frontmatter(lines: list[str]) -> tuple[dict[str, Any] | None, str, int]:
    """(parsed frontmatter or None, its raw text, the number of lines it takes) for a file's first lines."""
    if not lines or lines[0].strip() != "---":
        return None, "", 0
    for i in range(1, min(len(lines), 500)):
        if lines[i].strip() in ("---", "..."):
            raw = "\n".join(lines[1:i])
            try:
                parsed = load_plain(raw)
            except yaml.YAMLError:
                parsed = None
            return (parsed if isinstance(parsed, dict) else {}), raw, i + 1
    return None, "", 0


def _groups(tokens: list[Token]) -> list[list[Token]]:
    """Top-level blocks: each opening token at level 0 with everything up to its closing token."""
    groups: list[list[Token]] = []
    depth = 0
    for tok in tokens:
        if depth == 0:
            groups.append([])
        groups[-1].append(tok)
        depth += tok.nesting
    return groups


def _rendered_lines(lines: list[str]) -> int:
    """How many of ``lines`` fit in RENDER_CHARS."""
    total = 0
    for i, line in enumerate(lines):
        total += len(line) + 1
        if total > RENDER_CHARS:
            return i
    return len(lines)


def markdown_blocks(lines: list[str], first_line: int = 1) -> list[Block]:
    """Render ``lines`` (which start at file line ``first_line``) into blocks with their line ranges; past RENDER_CHARS,
    each further line is a block of escaped text."""
    shown = _rendered_lines(lines)
    rest = [Block(first_line + shown + i, first_line + shown + i, f"<p>{html.escape(line)}</p>")
            for i, line in enumerate(lines[shown:]) if line.strip()]
    lines = lines[:shown]
    text = "\n".join(lines)
    env: dict[str, Any] = {}
    out = []
    for group in _groups(_MD.parse(text, env)):
        head = group[0]
        if head.map is None:
            continue
        a, b = head.map
        b = max(a + 1, b)
        while b - 1 > a and not lines[b - 1].strip():  # a list's range takes the blank line after it
            b -= 1
        out.append(Block(first_line + a, first_line + b - 1, _MD.renderer.render(group, _MD.options, env)))
    return out + rest


def render_html(text: str) -> str:
    """A whole markdown text as HTML (the capture page's preview); past RENDER_CHARS, escaped text."""
    if len(text) <= RENDER_CHARS:
        return str(_MD.render(text))
    cut = text.rfind("\n", 0, RENDER_CHARS) + 1 or RENDER_CHARS
    return str(_MD.render(text[:cut])) + f"<pre>{html.escape(text[cut:])}</pre>"
