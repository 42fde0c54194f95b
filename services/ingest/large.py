"""Files larger than ``TESSERA_INGEST_BATCH_BYTES``, read a slice at a time so that ingest's memory follows the
slice, not the file.

A text or markdown file is cut at line boundaries: before a heading (then its chunks are exactly those of the whole
file), past 1.5 times the slice at a blank line, past twice the slice anywhere; never inside a fenced code block
unless the slice would grow past twice its size. A PDF is read page by page from the file (pypdf
loads objects lazily: a large embedded image is never read). Each slice carries its character and line offsets in
the whole text, so chunks keep the same offsets, lines and heading paths as when the file is read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from pypdf import PdfReader  # imported with the service, not during its first large PDF
from pypdf.errors import PdfReadError

from services.ingest.chunk import _FENCE, atx_heading
from services.ingest.parse import Parsed, ParseError, media_type_for, parse_markdown


@dataclass
class Slice:
    text: str
    char_offset: int  # characters of the whole text before this slice
    line_offset: int  # lines before it
    body_start: int = 0  # where the body starts inside this slice (the first one skips the frontmatter)


def _starts_section(line: str) -> bool:
    return line.startswith("#") and atx_heading(line.strip()) is not None


def text_slices(path: Path, slice_chars: int) -> Iterator[str]:
    """The file's text in slices of whole lines, about ``slice_chars`` each (UTF-8; a BOM is dropped)."""
    buf: list[str] = []
    size = 0
    fenced = False
    with path.open("r", encoding="utf-8-sig", errors="strict", newline="") as f:
        try:
            for line in f:
                if "\x00" in line:
                    raise ParseError("binary file (contains NUL bytes), not text")
                # Cut before a heading (chunks come out as from the whole file); past 1.5x at a blank line; past 2x anywhere.
                heading = not fenced and _starts_section(line)
                blank = not fenced and not line.strip()
                if buf and ((size >= slice_chars and heading) or (size >= 1.5 * slice_chars and blank) or size >= 2 * slice_chars):
                    piece = "".join(buf)
                    buf, size = [], 0  # before the yield: the lines are not kept while the slice is chunked
                    yield piece
                    del piece
                if _FENCE.match(line):
                    fenced = not fenced
                buf.append(line)
                size += len(line)
        except UnicodeDecodeError as exc:
            raise ParseError(f"not valid UTF-8 (near byte {exc.start} of a block)") from None
    if buf:
        piece = "".join(buf)
        buf = []
        yield piece


def pdf_pages(path: Path) -> tuple[str, Iterator[str]]:
    """(title, the text of each page), read lazily from the file."""
    try:
        # An open file, not a path: given a path, pypdf reads the whole file into memory first.
        reader = PdfReader(path.open("rb"))
        if reader.is_encrypted:
            raise ParseError("encrypted PDF: cannot read its text without the password")
        title = str(reader.metadata.get("/Title") or "") if reader.metadata else ""
    except ParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ParseError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None

    def pages() -> Iterator[str]:
        for page in reader.pages:
            try:
                yield (page.extract_text() or "").strip()
            except (PdfReadError, ValueError, KeyError, TypeError) as exc:
                raise ParseError(f"unreadable PDF page ({type(exc).__name__}: {exc})") from None

    return title or PurePath(path).stem, pages()


def read_large(path: Path, slice_chars: int, name: str = "") -> tuple[Parsed, Iterator[Slice]]:
    """The document's metadata (from its first slice: the frontmatter) and its slices with their offsets.
    ``Parsed.text`` is empty: the text is in the slices. ``name`` is the file's name when ``path`` is only where to
    read it (an open descriptor's /proc path)."""
    name = name or str(path)
    media = media_type_for(name, "")
    if media == "application/pdf":
        title, pages = pdf_pages(path)
        return Parsed("", 0, media, title, "doc"), _pdf_slices(pages, slice_chars)
    slices = text_slices(path, slice_chars)
    first = next(slices, "")
    if not first.strip():
        raise ParseError("empty file")
    meta = parse_markdown(first, name) if media == "text/markdown" else Parsed("", 0, media, PurePath(name).stem)
    head = Parsed("", 0, media, meta.title, meta.type, meta.tags, meta.project, meta.created, meta.warnings)
    return head, _offsets(first, meta.body_offset, slices)


def _offsets(first: str, body_start: int, rest: Iterator[str]) -> Iterator[Slice]:
    chars, lines = 0, 0
    text: str | None = first
    del first  # one slice in memory at a time: no name keeps an earlier one alive
    start = body_start
    while text is not None:
        yield Slice(text, chars, lines, start)
        chars += len(text)
        lines += text.count("\n")
        start = 0
        text = None
        text = next(rest, None)


def _pdf_slices(pages: Iterator[str], slice_chars: int) -> Iterator[Slice]:
    """Pages joined by blank lines (as a whole PDF is), in slices of about ``slice_chars``."""
    buf: list[str] = []
    size, chars, lines, first = 0, 0, 0, True
    for text in pages:
        piece = text if first else "\n\n" + text
        first = False
        buf.append(piece)
        size += len(piece)
        if size >= slice_chars:
            joined = "".join(buf)
            yield Slice(joined, chars, lines)
            chars += len(joined)
            lines += joined.count("\n")
            buf, size = [], 0
    if buf:
        yield Slice("".join(buf), chars, lines)
