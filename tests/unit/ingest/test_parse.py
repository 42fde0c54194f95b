from __future__ import annotations

import pytest
from helpers import make_pdf

from services.ingest.parse import ParseError, parse, parse_markdown

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


EXPORTED = """---
title: Retries need jitter
type: note
tags: [retries]
kind: insight
summary: Jitter spreads the retries of many clients.
auto_tags: [backoff, retries]
entities: [AWS (technology), Marc Brooker (person), plain name]
related: ['[[raft-elections]]']
source: /home/me/notes/backoff.md
tessera_id: 6f1c2b8e-3f43-4a55-9a6e-0c6b1d2e3f40
---
# Retries need jitter

Add random jitter to exponential backoff.
"""


def test_an_exported_note_carries_its_id_and_enrichment() -> None:
    p = parse_markdown(EXPORTED, "backoff.md")
    assert str(p.exported_id) == "6f1c2b8e-3f43-4a55-9a6e-0c6b1d2e3f40"
    assert p.given is not None and p.given.kind == "insight" and p.given.summary.startswith("Jitter")
    assert p.given.tags == ["backoff", "retries"]
    assert p.given.entities == [{"name": "AWS", "kind": "technology"}, {"name": "Marc Brooker", "kind": "person"},
                                {"name": "plain name", "kind": ""}]


@pytest.mark.parametrize("change", [("tessera_id: 6f1c2b8e-3f43-4a55-9a6e-0c6b1d2e3f40\n", ""),
                                    ("tessera_id: 6f1c2b8e-3f43-4a55-9a6e-0c6b1d2e3f40", "tessera_id: not-an-id")])
def test_a_summary_without_a_tessera_id_is_the_notes_own_text_not_an_enrichment(change: tuple[str, str]) -> None:
    p = parse_markdown(EXPORTED.replace(*change), "backoff.md")
    assert p.exported_id is None and p.given is None


def test_an_exported_note_without_enrichment_keeps_its_id_only() -> None:
    p = parse_markdown(EXPORTED.replace("summary: Jitter spreads the retries of many clients.\n", ""), "backoff.md")
    assert p.exported_id is not None and p.given is None
