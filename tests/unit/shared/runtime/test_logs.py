from __future__ import annotations

import json
import logging

from shared.runtime.logs import JsonFormatter, current_request_id, request_id, setup_logging


def test_json_lines_carry_identity_and_request_id() -> None:
    setup_logging("info", "json", service="search", instance="search-1")
    token = request_id.set("abc123")
    try:
        record = logging.makeLogRecord({"name": "t", "levelno": logging.INFO, "levelname": "INFO", "msg": "hit %s",
                                        "args": (3,), "query": "x"})
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id.reset(token)
    assert line["msg"] == "hit 3" and line["service"] == "search" and line["instance"] == "search-1"
    assert line["request_id"] == "abc123" and line["query"] == "x" and line["level"] == "info"


def test_current_request_id_is_made_once_per_context() -> None:
    token = request_id.set("")
    try:
        first = current_request_id()
        assert first and current_request_id() == first
    finally:
        request_id.reset(token)
