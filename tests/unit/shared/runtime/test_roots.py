"""AllowedRoots: the one check of which files ingest and tensor may read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import PermissionDenied
from shared.runtime.roots import AllowedRoots


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "notes" / "sub").mkdir(parents=True)
    (tmp_path / "notes" / "a.md").write_text("a")
    (tmp_path / "notes-old").mkdir()
    (tmp_path / "notes-old" / "b.md").write_text("b")
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key.md").write_text("k")
    return tmp_path


def roots(tree: Path, *names: str) -> AllowedRoots:
    return AllowedRoots(names, component="ingest", setting="TESSERA_INGEST_ROOTS", base=tree)


def test_files_under_a_root_are_allowed_and_come_back_resolved(tree: Path) -> None:
    r = roots(tree, "notes")
    assert r.check(tree / "notes" / "a.md") == (tree / "notes" / "a.md").resolve()
    assert r.check(tree / "notes") == (tree / "notes").resolve()  # the root itself
    assert r.allows(tree / "notes" / "sub" / "not-yet-written.md")


def test_a_sibling_with_the_root_as_prefix_is_outside(tree: Path) -> None:
    assert not roots(tree, "notes").allows(tree / "notes-old" / "b.md")


def test_dotdot_is_resolved_before_the_check(tree: Path) -> None:
    r = roots(tree, "notes")
    with pytest.raises(PermissionDenied) as err:
        r.check(tree / "notes" / ".." / "secret" / "key.md")
    assert "is outside the configured roots" in str(err.value) and "set TESSERA_INGEST_ROOTS" in str(err.value)
    assert err.value.code == "PERMISSION_DENIED" and str(err.value).startswith("ingest: ")
    assert r.allows(tree / "secret" / ".." / "notes" / "a.md")


def test_symlinks_are_judged_by_where_they_lead(tree: Path) -> None:
    r = roots(tree, "notes")
    out = tree / "notes" / "leak.md"
    os.symlink(tree / "secret" / "key.md", out)
    assert not r.allows(out), "a link inside a root that leads out of it is refused"
    inside = tree / "secret" / "to-notes"
    os.symlink(tree / "notes", inside)
    assert r.allows(inside / "a.md"), "a link from outside into a root reaches a file under the root"
    linked_root = tree / "alias"
    os.symlink(tree / "notes", linked_root)
    assert roots(tree, "alias").allows(tree / "notes" / "a.md"), "a root given through a link is its target"


def test_trailing_separators_do_not_matter(tree: Path) -> None:
    r = AllowedRoots([str(tree / "notes") + "/"], component="tensor", setting="TESSERA_TENSOR_ROOTS")
    assert r.allows(str(tree / "notes" / "a.md"))
    assert r.allows(str(tree / "notes") + "/")
    assert not r.allows(str(tree / "notes-old") + "/")


def test_case_follows_the_file_system(tree: Path) -> None:
    """On Linux names are case-sensitive: NOTES is another directory, outside the root."""
    r = roots(tree, "notes")
    upper = tree / "NOTES" / "a.md"
    assert r.allows(upper) == (os.path.normcase("A") == "a")


def test_relative_roots_are_taken_from_the_base_and_deduplicated(tree: Path) -> None:
    r = roots(tree, "notes", "./notes", "notes/")
    assert list(r) == [(tree / "notes").resolve()]
    assert str(r) == str((tree / "notes").resolve())
