"""Captured notes as markdown files with YAML frontmatter; no I/O."""

from __future__ import annotations

import datetime as dt

import yaml

from services.gateway.schemas import NoteIn
from shared.runtime.files import slug


def idempotent_name(note: NoteIn, key: str) -> str:
    """The file name of a capture sent with an Idempotency-Key: the same request again names the same file."""
    return f"{slug(note.title)}-{key.lower()}.md"


def note_markdown(note: NoteIn, now: dt.datetime) -> str:
    front = {"title": note.title, "type": note.type, "tags": list(note.tags), "created": now.isoformat(timespec="seconds")}
    if note.project:
        front["project"] = note.project
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()
    body = note.body if note.body.lstrip().startswith("#") else f"# {note.title}\n\n{note.body}"
    return f"---\n{head}\n---\n{body.rstrip()}\n"


def note_name(note: NoteIn, now: dt.datetime, taken: set[str]) -> str:
    base = f"{now:%Y-%m-%d}-{slug(note.title)}"
    name, n = f"{base}.md", 2
    while name in taken:
        name, n = f"{base}-{n}.md", n + 1
    return name
