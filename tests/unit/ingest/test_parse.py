from __future__ import annotations

import pytest
from helpers import make_pdf

from services.ingest.parse import ParseError, parse

NOTE = b"""---
title: Tidal gauges
type: fieldnote
tags: [ocean, sensors]
project: coast
created: 2024-03-01
---
# Tidal gauges

Body text.
"""


def test_frontmatter_fields_and_unknown_type_kept() -> None:
    p = parse(NOTE, "notes/tides.md")
    assert (p.title, p.type, p.tags, p.project) == ("Tidal gauges", "fieldnote", ["ocean", "sensors"], "coast")
    assert p.created is not None and p.created.year == 2024
    assert p.warnings and "unknown type 'fieldnote' kept" in p.warnings[0]
    assert p.text.startswith("# Tidal gauges") and NOTE.decode()[p.body_offset:] == p.text


def test_title_falls_back_to_heading_then_file_name() -> None:
    assert parse(b"# Heading title\n\ntext", "a.md").title == "Heading title"
    assert parse(b"just text", "notes/plain-note.txt").title == "plain-note"


@pytest.mark.parametrize(("data", "path", "reason"), [
    (b"", "a.md", "empty file"),
    (b"   \n\n ", "a.txt", "empty file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "a.txt", "binary file"),
    (b"caf\xe9 au lait", "a.txt", "not valid UTF-8"),
    (b"---\ntitle: [unclosed\n---\nbody", "a.md", "frontmatter is not valid YAML"),
    (b"---\n- a\n- b\n---\nbody", "a.md", "must be a YAML mapping"),
    (b"x" * 100, "a.txt", "over the configured limit"),
    (b"data", "a.exe", "unsupported file type '.exe'"),
    (b"%PDF-1.4 garbage", "a.pdf", "unreadable PDF"),
])
def test_bad_files_have_a_reason(data: bytes, path: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        parse(data, path, max_bytes=50)


def test_pdf_text_layer_and_encryptedmake_pdf() -> None:
    p = parse(make_pdf("Sea level rose by three millimetres."), "report.pdf")
    assert "Sea level rose" in p.text and p.media_type == "application/pdf"
    with pytest.raises(ParseError, match="encrypted PDF"):
        parse(make_pdf("secret", password="pw"), "locked.pdf")
