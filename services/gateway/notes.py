"""Captured notes as markdown files with YAML frontmatter; no I/O."""

from __future__ import annotations

import datetime as dt

import yaml

from services.gateway.schemas import NoteIn
from shared.runtime.files import slug
from shared.runtime.yamlplain import load_plain


def idempotent_name(note: NoteIn, key: str) -> str:
    """The file name of a capture sent with an Idempotency-Key: the same request again names the same file."""
    return f"{slug(note.title)}-{key.lower()}.md"


def note_markdown(note: NoteIn, now: dt.datetime) -> str:
    front = {"title": note.title, "type": note.type, "tags": list(note.tags), "created": now.isoformat(timespec="seconds")}
    if note.project:
        front["project"] = note.project
    if note.url:
        front["url"] = note.url
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()
    body = note.body if note.body.lstrip().startswith("#") else f"# {note.title}\n\n{note.body}"
    return f"---\n{head}\n---\n{body.rstrip()}\n"


def note_name(note: NoteIn, now: dt.datetime, taken: set[str]) -> str:
    base = f"{now:%Y-%m-%d}-{slug(note.title)}"
    name, n = f"{base}.md", 2
    while name in taken:
        name, n = f"{base}-{n}.md", n + 1
    return name


def edited_markdown(text: str, now: dt.datetime, *, title: str | None = None, body: str | None = None,
                    tags: list[str] | None = None, type: str | None = None) -> str:
    """A note's file with the given fields changed and ``updated`` set; every other frontmatter key (created, project,
    tessera_id, a person's own keys) stays. A note without frontmatter gets one. The body's first heading follows a new
    title when it was the old title (as a capture writes it)."""
    front: dict[str, object] = {}
    rest = text
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
        loaded = load_plain("\n".join(lines[1:end])) if end else None  # yaml.YAMLError: the caller says the file is not valid
        if isinstance(loaded, dict):
            front = {str(k): v.isoformat() if isinstance(v, dt.date) else v for k, v in loaded.items()}
            rest = "\n".join(lines[end + 1:])
    old_title = str(front.get("title") or "")
    if title is not None:
        front["title"] = title
    if tags is not None:
        front["tags"] = list(tags)
    if type is not None:
        front["type"] = type
    front["updated"] = now.isoformat(timespec="seconds")
    if body is not None:
        new_title = str(front.get("title") or "")
        rest = body if body.lstrip().startswith("#") or not new_title else f"# {new_title}\n\n{body}"
    elif title is not None and old_title:
        head, _, tail = rest.lstrip("\n").partition("\n")
        if head.strip() == f"# {old_title}":
            rest = f"# {title}\n{tail}"
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=True).strip()
    return f"---\n{head}\n---\n{rest.strip()}\n"
