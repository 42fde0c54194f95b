"""The snapshot schedule's bookkeeping on real folders: which snapshots are listed, when one is due, which are deleted."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.ops import snapshot
from shared.runtime.config import Settings, load_settings


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return load_settings({"TESSERA_DATA_DIR": str(tmp_path / "data"), **env})


def made(root: Path, hours_ago: float) -> Path:
    """A complete snapshot folder (its manifest) made ``hours_ago``."""
    when = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    path = root / f"{when:%Y%m%dT%H%M%SZ}-{int(hours_ago * 1000):06x}"
    path.mkdir(parents=True)
    (path / snapshot.MANIFEST).write_text(json.dumps({"format": snapshot.FORMAT, "name": path.name, "created_at": when.isoformat(),
                                                      "counts": {"documents": 3}, "files": {"db.dump": {"bytes": 10}}}))
    return path


def test_listed_newest_first_and_never_a_partial(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    root = snapshot.default_dir(s)
    old, new = made(root, 30), made(root, 2)
    (root / f".{new.name}x{snapshot.PARTIAL}").mkdir()
    (root / "not-a-snapshot").mkdir()
    assert [m["path"] for m in snapshot.listed(s)] == [str(new), str(old)]
    assert snapshot.last_json(s)["last"]["name"] == new.name and snapshot.last_json(s)["count"] == 2


@pytest.mark.parametrize(("every", "seconds"), [("off", None), ("1d", 86_400.0), ("12h", 43_200.0), ("1w", 604_800.0)])
def test_the_period(tmp_path: Path, every: str, seconds: float | None) -> None:
    assert snapshot.period_s(settings_for(tmp_path, TESSERA_SNAPSHOT_EVERY=every)) == seconds


@pytest.mark.parametrize("every", ["daily", "0.00001h", "-1d"])
def test_a_bad_period_is_a_clear_error(tmp_path: Path, every: str) -> None:
    with pytest.raises(ConfigError, match="TESSERA_SNAPSHOT_EVERY"):
        snapshot.period_s(settings_for(tmp_path, TESSERA_SNAPSHOT_EVERY=every))


def test_due_when_the_newest_is_older_than_the_period(tmp_path: Path) -> None:
    s = settings_for(tmp_path)
    assert snapshot.due(s, 3600)  # none yet
    made(snapshot.default_dir(s), 2)
    assert snapshot.due(s, 3600) and not snapshot.due(s, 3 * 3600)


def test_prune_keeps_the_newest_and_clears_old_partials(tmp_path: Path) -> None:
    s = settings_for(tmp_path, TESSERA_SNAPSHOT_DIR=str(tmp_path / "elsewhere"))
    root = snapshot.default_dir(s)
    assert root == (tmp_path / "elsewhere").resolve()
    paths = [made(root, h) for h in (1, 25, 49, 73)]
    fresh, stale = root / f".a{snapshot.PARTIAL}", root / f".b{snapshot.PARTIAL}"
    fresh.mkdir()
    stale.mkdir()
    two_days_ago = time.time() - 2 * 86_400
    os.utime(stale, (two_days_ago, two_days_ago))
    gone = snapshot.prune(s, keep=2)
    assert sorted(gone) == sorted([paths[2], paths[3], stale])
    assert [m["path"] for m in snapshot.listed(s)] == [str(paths[0]), str(paths[1])]
    assert fresh.exists()  # a snapshot being made right now
