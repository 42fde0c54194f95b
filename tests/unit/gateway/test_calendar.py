"""The weekly review's schedule and the timer that asks for it."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from services.gateway import calendar
from shared.errors import ConfigError


def test_the_review_schedule() -> None:
    when = calendar.parse("Sunday 18:00")
    assert when == (6, 18, 0) and calendar.parse("off") is None
    with pytest.raises(ConfigError, match="TESSERA_REVIEW_SCHEDULE"):
        calendar.parse("every sunday")
    tz = dt.timezone(dt.timedelta(hours=1))
    tue = dt.datetime(2026, 12, 1, 9, 0, tzinfo=tz)  # a Tuesday
    assert calendar.next_run(when, tue) == dt.datetime(2026, 12, 6, 18, 0, tzinfo=tz)
    sunday_late = dt.datetime(2026, 12, 6, 18, 0, 30, tzinfo=tz)
    assert calendar.next_run(when, sunday_late) == dt.datetime(2026, 12, 13, 18, 0, tzinfo=tz)
    assert calendar.run_key(dt.datetime(2026, 12, 6, 18, 0, tzinfo=tz)) == "weekly-2026-12-06"


async def test_the_review_timer_asks_again_until_a_gateway_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calendar, "RETRY_S", 0.01)
    sent: list[dict[str, object]] = []

    async def request(payload: bytes) -> bytes:
        sent.append(json.loads(payload))
        if len(sent) < 3:
            raise TimeoutError("no responders")
        return json.dumps({"claimed": True, "path": "/n/review.md"}).encode()

    timer = calendar.ReviewTimer("sun 18:00", request)
    reply = await timer.fire(dt.datetime(2026, 12, 6, 18, 0))
    assert reply["claimed"] and len(sent) == 3 and {s["key"] for s in sent} == {"weekly-2026-12-06"}
