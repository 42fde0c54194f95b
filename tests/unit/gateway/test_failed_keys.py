"""Failed keys count over a sliding minute: five bad keys straddling a clock minute still lock the address out."""

from __future__ import annotations

import pytest

from services.gateway import edge


async def test_failures_on_both_sides_of_a_clock_minute_add_up(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [59 * 60 + 58.0]  # two seconds before a minute ends
    monkeypatch.setattr(edge.time, "time", lambda: now[0])
    keys = edge.FailedKeys(limit=5, cache=None)
    for _ in range(3):
        await keys.failed("10.0.0.1")
    now[0] += 3  # the clock minute has turned
    for _ in range(2):
        await keys.failed("10.0.0.1")
    limited = keys.blocked("10.0.0.1")
    assert limited is not None and 1 <= limited.retry_after_s <= 60
    assert keys.blocked("10.0.0.2") is None  # another address is not affected
    now[0] += 58  # the first three failures are now over a minute old
    assert keys.blocked("10.0.0.1") is None
