"""Markdown for the web page, rendered on the server: blocks that keep their source line numbers.

A document view shows each top-level block (heading, paragraph, list, code,
table) beside the line numbers it came from, so a citation's ``path:a-b`` can
be highlighted exactly. Raw HTML in notes is shown as text, never run, and
markdown-it refuses ``javascript:`` links. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

_MD = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")


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
                parsed = yaml.safe_load(raw)
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


def markdown_blocks(lines: list[str], first_line: int = 1) -> list[Block]:
    """Render ``lines`` (which start at file line ``first_line``) into blocks with their line ranges."""
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
    return out


def render_html(text: str) -> str:
    """A whole markdown text as HTML (the capture page's preview)."""
    return str(_MD.render(text))
