"""Large files read a slice at a time give the same chunks (offsets, lines, heading paths) as when read whole."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from services.ingest.chunk import chunk_text
from services.ingest.large import read_large, text_slices
from services.ingest.parse import content_hash, parse
from shared.runtime.files import file_sha256


def document(sections: int) -> str:
    parts = ["---\ntitle: Big\ntags: [a, b]\n---\n# Big document\n\nIntro line.\n"]
    for i in range(sections):
        parts.append(f"\n## Part {i}\n\nThe part {i} says something about kettles and chains, number {i}.\n"
                     f"\n### Detail {i}\n\n```\ncode line {i}\n\n# not a heading inside a fence\n```\n\nMore text {i}.\n")
    return "".join(parts)


def sliced(path: Path, slice_chars: int) -> tuple[object, list[tuple[int, int, int, int, tuple[str, ...], str]]]:
    head, slices = read_large(path, slice_chars)
    headings: list[tuple[int, str]] = []
    out, n = [], 0
    for piece in slices:
        for c in chunk_text(piece.text, piece.body_start, headings=headings):
            c = dataclasses.replace(c, char_start=c.char_start + piece.char_offset, line_start=c.line_start + piece.line_offset)
            out.append((n, c.char_start, c.line_start, c.tokens, c.heading_path, c.text))
            n += 1
    return head, out


def test_slices_give_the_chunks_of_the_whole_file(tmp_path: Path) -> None:
    text = document(300)
    path = tmp_path / "big.md"
    path.write_text(text)
    parsed = parse(text.encode(), str(path))
    whole = [(c.ord, c.char_start, c.line_start, c.tokens, c.heading_path, c.text) for c in chunk_text(text, parsed.body_offset)]
    head, parts = sliced(path, 2000)
    assert (head.title, head.tags) == (parsed.title, parsed.tags)  # type: ignore[attr-defined]
    assert parts == whole
    assert file_sha256(path) == content_hash(path.read_bytes())


def test_slices_are_bounded_and_keep_fences_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.md"
    path.write_text(document(500))
    pieces = list(text_slices(path, 3000))
    assert len(pieces) > 10 and max(map(len, pieces)) <= 6000
    assert "".join(pieces) == path.read_text()
    assert all(p.count("```") % 2 == 0 for p in pieces)  # no slice ends inside a fenced block
