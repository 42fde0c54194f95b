"""What ingest knows of a note before enrichment: its type mapped onto the five kinds, the user's own fields, and
which files the watcher handles."""

from __future__ import annotations

from services.ingest.parse import parse
from services.ingest.watch import watched
from shared.contracts import KIND_OF_TYPE, KINDS


def test_frontmatter_types_map_onto_the_five_kinds_and_the_users_fields_are_known() -> None:
    assert set(KIND_OF_TYPE.values()) == set(KINDS)
    assert KIND_OF_TYPE["meeting"] == "decision" and KIND_OF_TYPE["paper"] == "reference" and "note" not in KIND_OF_TYPE
    p = parse(b"---\ntitle: Mine\ntype: howto\ntags: [a]\n---\nbody text\n", "x.md")
    assert p.kind == "snippet" and p.user_fields == {"title", "type", "tags"} and not p.warnings
    bare = parse(b"just a line of text\n", "notes/idea.md")
    assert bare.kind == "" and bare.user_fields == frozenset() and bare.title == "idea"  # the file name: the model may title it
    headed = parse(b"# A heading\n\ntext\n", "y.md")
    assert headed.user_fields == {"title"}
    assert parse(b"---\ntype: decision\n---\nx\n", "z.md").warnings == []  # the five are known types
    assert parse(b"a  b\n\nc", "1.md").body_hash == parse(b"---\ntitle: t\n---\na b c\n", "2.md").body_hash


def test_watched_files() -> None:
    assert watched("/n/a.md") and watched("/n/b.pdf") and watched("/n/c.txt")
    assert not watched("/n/.hidden.md") and not watched("/n/a.md.tmp") and not watched("/n/a.md~") and not watched("/n/x.py")
