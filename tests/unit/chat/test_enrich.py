"""Enrichment's pure parts: the model's output checked and normalised, the retry policy, the setting."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from services.chat.enrich import SCHEMA, BadOutput, messages, parse_output
from shared.contracts import KINDS, enrich_enabled


def test_enrichment_output_is_checked_and_normalised() -> None:
    out = parse_output(json.dumps({"type": "Bug", "title": "  Login   loop ", "summary": "Safari\nrejects it.",
                                   "tags": ["Safari", "safari", "Auth Cookies", "", "a", "b", "c", "d"],
                                   "entities": [{"name": "Safari", "kind": "technology"}, {"name": "safari", "kind": "technology"},
                                                {"name": "Ana", "kind": "person"}, {"name": "x", "kind": "city"}]}))
    assert out.kind == "bug" and out.title == "Login loop" and out.summary == "Safari rejects it."
    assert out.tags == ["safari", "auth-cookies", "a", "b", "c"]  # deduplicated, at most 5
    assert out.entities == [{"name": "Safari", "kind": "technology"}, {"name": "Ana", "kind": "person"}]
    with pytest.raises(BadOutput, match="not valid JSON"):
        parse_output('{"type": "bug", "title": ')
    raw = parse_output('{"type": "bug", "title": "Two\tlines\nhere", "summary": "s", "tags": ["a\tb"], "entities": []}')
    assert raw.title == "Two lines here" and raw.tags == ["a-b"]  # raw control characters in strings are folded
    with pytest.raises(BadOutput, match="unknown type 'howto'"):
        parse_output(json.dumps({"type": "howto", "title": "t", "summary": "s", "tags": [], "entities": []}))
    with pytest.raises(BadOutput, match="not a JSON object"):
        parse_output("[1, 2]")
    assert SCHEMA["properties"]["type"]["enum"] == list(KINDS)
    msgs = messages("T", "word " * 2000, 100)
    assert msgs[0]["role"] == "system" and len(msgs[1]["content"]) < 200 and msgs[1]["content"].endswith("…")


def test_enrich_setting_is_on_off_or_projects() -> None:
    assert enrich_enabled("on", "x") and not enrich_enabled("off", "x") and not enrich_enabled("", "x")
    assert enrich_enabled("home, work", "work") and not enrich_enabled("home,work", "play")


class ScriptedModel:
    """A generator slot that answers from a script: the retry policy's input, not a language model."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.calls = answers, 0

    def generate(self, prompt: list[int], messages: list[dict[str, str]], sampling: Any, stop: list[str], cancel: Any,
                 emit: Any, schema: dict[str, Any] | None = None, abortable: bool = False) -> tuple[str, int]:
        assert schema is SCHEMA  # enrichment always asks for JSON of its schema
        text = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        emit(text)
        return "stop", 1


class Template:
    def render(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages)

    def tokenize(self, text: str) -> list[int]:
        return [1] * len(text.split())

    def tokenize_messages(self, messages: list[dict[str, str]]) -> list[int]:
        return self.tokenize(self.render(messages))


def enricher(model: ScriptedModel) -> Any:
    from services.chat.enrich import Enricher
    from services.chat.slots import SlotPool
    from shared.runtime.channels import Channels
    from shared.runtime.config import load_settings

    settings = load_settings({})
    rt = SimpleNamespace(settings=settings, channels=Channels(settings), instance_id="chat-test-0")
    return Enricher(rt, Template(), SlotPool([model], 4))  # type: ignore[arg-type]


GOOD = json.dumps({"type": "decision", "title": "Use gRPC", "summary": "We chose gRPC.", "tags": ["grpc"], "entities": []})


async def test_bad_output_is_asked_for_once_more_then_given_up_with_the_reason() -> None:
    model = ScriptedModel(['{"type": "decision", "title": "x"', GOOD])
    result, reason, _ = await enricher(model).enrich_text("t", "We decided to use gRPC.")
    assert result is not None and result.kind == "decision" and model.calls == 2 and reason == ""
    model = ScriptedModel(['{"type": "howto", "title": "t", "summary": "s", "tags": [], "entities": []}'])
    result, reason, _ = await enricher(model).enrich_text("t", "text")
    assert result is None and model.calls == 2 and "unknown type 'howto'" in reason
