from __future__ import annotations

from pathlib import Path

import pytest

from shared.runtime.db import MIGRATIONS_DIR, MigrationError, migration_files, redact


def test_shipped_migrations_are_ordered_and_named() -> None:
    files = migration_files()
    assert [v for v, _, _ in files] == sorted(v for v, _, _ in files)
    assert files[0][1] == "0001_core.sql" and MIGRATIONS_DIR.is_dir()


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1;")
    (tmp_path / "two.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=r"two\.sql"):
        migration_files(tmp_path)


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share a version"):
        migration_files(tmp_path)


def test_passwords_are_redacted_from_messages() -> None:
    assert redact("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"
