"""`tessera status` says why a service is not SERVING: restarts and its self-test marker."""

from __future__ import annotations

import json
import os
from pathlib import Path

from shared.runtime.config import load_settings
from shared.runtime.status import selftests, why_not_serving


def test_a_process_that_died_in_its_self_test_is_named(tmp_path: Path) -> None:
    settings = load_settings({"TESSERA_DATA_DIR": str(tmp_path)})
    run = settings.path("run")
    run.mkdir(parents=True)
    (run / "chat-0.selftest.json").write_text(json.dumps({"state": "running", "pid": 2 ** 22 + 12345, "at": 0, "detail": ""}))
    (run / "chat-1.selftest.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "at": 0, "detail": ""}))
    markers = selftests(settings, "chat")
    assert [m["state"] for m in markers] == ["died", "running"]
    why = why_not_serving(4, markers)
    assert "restarted 4 times" in why and "died during its model self-test" in why and "self-test is running" in why


def test_a_failed_self_test_gives_its_reason() -> None:
    why = why_not_serving(1, [{"state": "failed", "detail": "chat: the model self-test generated no token"}])
    assert why == "the process has restarted 1 time; it failed its self-test: chat: the model self-test generated no token"
    assert why_not_serving(0, [{"state": "passed"}]) == ""
