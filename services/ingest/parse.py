"""Turn a file's bytes into text and metadata, or a reason why not. No I/O.

Markdown's YAML frontmatter gives title, type, tags, project and created; a type
outside :data:`KNOWN_TYPES` is kept and flagged. PDFs give their text layer
(pypdf). Everything else must be UTF-8 text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml

from shared.contracts import KIND_OF_TYPE, KINDS, REVIEW_TYPE
from shared.runtime.yamlplain import load_plain

KNOWN_TYPES = frozenset({"note", "doc", "article", "paper", "meeting", "journal", "reference", "idea", "task", "howto", "log",
                         *KINDS, REVIEW_TYPE})
MARKDOWN = frozenset({".md", ".markdown", ".mdx"})
TEXT = frozenset({".txt", ".text", ".rst", ".org", ".csv", ".log"})
PDF = frozenset({".pdf"})
SUPPORTED = MARKDOWN | TEXT | PDF
_FRONTMATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
class Budget:
    """The time one file may take to parse and chunk: ``base_s`` plus ``s_per_mb`` for each MB, checked as the work
    goes; past it the file fails with its reason (ParseError) and the rest of the batch goes on."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self.deadline = clock() + seconds

    @classmethod
    def for_size(cls, size: int, base_s: float, s_per_mb: float) -> Budget:
        return cls(base_s + s_per_mb * size / 1e6) if s_per_mb > 0 else cls.unlimited()

    @classmethod
    def unlimited(cls) -> Budget:
        return cls(float("inf"))

    def check(self, doing: str) -> None:
        if self.clock() > self.deadline:
            raise ParseError(f"took longer than its time budget of {self.seconds:.1f} s while {doing} "
                             "(TESSERA_INGEST_PARSE_BASE_S + TESSERA_INGEST_PARSE_S_PER_MB per MB)")


def atx_heading(line: str) -> tuple[int, str] | None:
    r"""(level, text) of a markdown ATX heading line (``## Title ##``), or None. Linear in the line: a regex with a lazy
    group and trailing ``\s*#*\s*`` was cubic in a line of spaces (10,000 spaces: about 25 minutes)."""
    if not line.startswith("#"):
        return None
    level = len(line) - len(line.lstrip("#"))
    rest = line[level:]
    if level > 6 or not rest or not rest[0].isspace():
        return None
    rest = rest.strip()
    text = rest.rstrip("#").rstrip()  # the closing sequence
    if not text:
        text = rest[:1]  # "# #": the text is "#"
    return (level, text) if text else None



def first_h1(body: str) -> str | None:
    """The text of the first level-1 heading, line by line (linear)."""
    for line in body.splitlines():
        if line.startswith("# ") or line.startswith("#\t"):
            found = atx_heading(line.strip())
            if found and found[0] == 1:
                return found[1]
    return None


class ParseError(ValueError):
    """The file cannot be ingested; the message says why, for the user."""


@dataclass(frozen=True)
class Given:
    """The enrichment an exported note carries in its frontmatter (kind, summary, auto_tags, entities)."""

    kind: str
    summary: str
    tags: list[str]
    entities: list[dict[str, str]]


_ENTITY = re.compile(r"^(?P<name>.*?)\s*\((?P<kind>[a-z]+)\)$")


def _as_entities(value: Any) -> list[dict[str, str]]:
    """Entities as `tessera export` writes them ("Name (kind)"), or {name, kind} mappings."""
    out = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and item.get("name"):
            out.append({"name": str(item["name"]), "kind": str(item.get("kind") or "")})
        elif isinstance(item, str) and item.strip():
            m = _ENTITY.match(item.strip())
            out.append({"name": m["name"], "kind": m["kind"]} if m else {"name": item.strip(), "kind": ""})
    return out


def _exported(meta: dict[str, Any]) -> tuple[uuid.UUID | None, Given | None]:
    """The id and enrichment of a note that `tessera export` wrote (its frontmatter has tessera_id); else (None, None)."""
    try:
        exported = uuid.UUID(str(meta.get("tessera_id") or ""))
    except ValueError:
        return None, None
    summary = meta.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        return exported, None
    kind = str(meta.get("kind") or "")
    return exported, Given(kind if kind in KINDS else "", summary.strip(), _as_tags(meta.get("auto_tags")), _as_entities(meta.get("entities")))


@dataclass
class Parsed:
    text: str                       # the body that is chunked (frontmatter removed)
    body_offset: int                # where text starts in the decoded source (for offsets/lines)
    media_type: str
    title: str
    type: str = "note"
    tags: list[str] = field(default_factory=list)
    project: str = ""
    created: dt.datetime | None = None
    warnings: list[str] = field(default_factory=list)
    line_offset: int = 0            # lines before text in the source (frontmatter)
    user_fields: frozenset[str] = frozenset()  # what the file itself sets (title, type, tags): enrichment never overwrites it
    exported_id: uuid.UUID | None = None  # `tessera export` wrote it: the document it came from (frontmatter tessera_id)
    given: Given | None = None  # ... with that document's enrichment, which is kept instead of asking the model again

    @property
    def kind(self) -> str:
        """The user's type mapped onto the five enrichment kinds ('' when it says nothing: the model decides)."""
        return KIND_OF_TYPE.get(self.type, "")

    @property
    def body_hash(self) -> str:
        return body_hash(self.text)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def body_hash(text: str) -> str:
    """A hash of the body with whitespace folded: two captures of the same text have the same one, whatever their frontmatter."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def media_type_for(path: str, declared: str = "") -> str:
    if declared:
        return declared
    suffix = PurePath(path).suffix.lower()
    if suffix in MARKDOWN:
        return "text/markdown"
    if suffix in PDF:
        return "application/pdf"
    if suffix in TEXT or not suffix:
        return "text/plain"
    raise ParseError(f"unsupported file type {suffix!r} (supported: markdown, plain text, PDF)")


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ParseError("binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not valid UTF-8 (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None
    return text


def _as_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.replace(",", " ").split() if t.strip()]
    if isinstance(value, list):
        return [str(t).strip() for t in value if str(t).strip()]
    return [str(value)]


def _as_datetime(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def parse_markdown(source: str, path: str) -> Parsed:
    meta: dict[str, Any] = {}
    warnings: list[str] = []
    body_offset = 0
    m = _FRONTMATTER.match(source)
    if m:
        try:
            loaded = load_plain(m.group(1))  # no aliases, at most 64 KB
        except yaml.YAMLError as exc:
            raise ParseError(f"frontmatter is not valid YAML ({str(exc).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ParseError("frontmatter must be a YAML mapping (key: value lines)")
        meta = loaded or {}
        body_offset = m.end()
    body = source[body_offset:]
    h1 = first_h1(body)
    title = str(meta.get("title") or (h1 if h1 else PurePath(path).stem))
    doc_type = str(meta.get("type") or "note")
    user_fields = frozenset(k for k in ("type", "tags") if meta.get(k)) | ({"title"} if meta.get("title") or h1 else set())
    if doc_type not in KNOWN_TYPES:
        warnings.append(f"unknown type {doc_type!r} kept (known: {', '.join(sorted(KNOWN_TYPES))})")
    created = _as_datetime(meta.get("created"))
    if meta.get("created") is not None and created is None:
        warnings.append(f"created {meta.get('created')!r} is not a date; ignored")
    exported, given = _exported(meta)
    return Parsed(body, body_offset, "text/markdown", title, doc_type, _as_tags(meta.get("tags")), str(meta.get("project") or ""),
                  created, warnings, source.count("\n", 0, body_offset), user_fields, exported, given)


def parse_pdf(data: bytes, path: str, budget: Budget | None = None) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ParseError("encrypted PDF: cannot read its text without the password")
        pages = []
        for page in reader.pages:
            if budget is not None:
                budget.check("reading its PDF pages")
            pages.append(page.extract_text() or "")
        title = str(reader.metadata.get("/Title") or "") if reader.metadata else ""
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ParseError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(p.strip() for p in pages)
    if not text.strip():
        raise ParseError("PDF has no text layer (scanned images need OCR first)")
    return Parsed(text, 0, "application/pdf", title or PurePath(path).stem, "doc", user_fields=frozenset({"title"} if title else set()))


def parse(data: bytes, path: str, declared_media_type: str = "", max_bytes: int = 0, budget: Budget | None = None) -> Parsed:
    """Parse a document; raises ParseError with a user-facing reason."""
    if max_bytes and len(data) > max_bytes:
        raise ParseError(f"{len(data)} bytes is over the configured limit of {max_bytes} bytes (TESSERA_INGEST_MAX_BYTES)")
    if not data.strip():
        raise ParseError("empty file")
    media = media_type_for(path, declared_media_type)
    if media == "application/pdf":
        return parse_pdf(data, path, budget)
    source = _decode(data)
    parsed = parse_markdown(source, path) if media == "text/markdown" else Parsed(source, 0, "text/plain", PurePath(path).stem)
    if not parsed.text.strip():
        raise ParseError("no text besides the frontmatter")
    return parsed
