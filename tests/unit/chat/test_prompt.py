"""Prompt building: sources numbered best first, the budget never exceeded, history fitted after sources."""

from __future__ import annotations

import pytest

from services.chat.prompt import PromptTooLong, Source, Turn, build_prompt, messages_for


def render(messages: list[dict[str, str]]) -> str:
    return "".join(f"<{m['role']}>{m['content']}</>" for m in messages)


def count(text: str) -> int:  # one token per word: enough to test the arithmetic
    return len(text.split())


def src(n: int, words: int) -> Source:
    return Source(number=n, chunk_id=f"c{n}", document_id=f"d{n}", title=f"Doc {n}", path=f"notes/{n}.md", line_start=1, line_end=3,
                  text=" ".join(f"w{n}_{i}" for i in range(words)))


def test_all_sources_fit_and_are_numbered_in_rank_order() -> None:
    plan = build_prompt("what?", [src(7, 20), src(9, 20)], [], render=render, count=count, context=2000, max_tokens=100)
    assert [s.number for s in plan.sources] == [1, 2] and [s.chunk_id for s in plan.sources] == ["c7", "c9"]
    assert plan.tokens == count(plan.text) <= plan.budget == 1900
    assert plan.text.rindex("Source [2]") < plan.text.rindex("Source [1]") < plan.text.rindex("Question: what?")  # best next to the question


def test_the_last_source_is_cut_to_fit_and_the_budget_holds() -> None:
    plan = build_prompt("what?", [src(1, 150), src(2, 400), src(3, 50)], [], render=render, count=count, context=500, max_tokens=100)
    assert len(plan.sources) == 2 and plan.sources[1].text.endswith("…")
    assert count(plan.text) <= 400


def test_history_fills_what_sources_leave_newest_first() -> None:
    history = [Turn("user", "old " * 100), Turn("assistant", "older answer " * 10), Turn("user", "recent question"),
               Turn("assistant", "recent answer")]
    plan = build_prompt("and then?", [src(1, 30)], history, render=render, count=count, context=300, max_tokens=100)
    assert plan.history_used == 3  # the 100-word turn does not fit
    assert "recent answer" in plan.text and "old old" not in plan.text


def test_question_that_cannot_fit_is_refused() -> None:
    with pytest.raises(PromptTooLong, match="context"):
        build_prompt("word " * 500, [], [], render=render, count=count, context=512, max_tokens=100)


def test_without_sources_no_citation_instructions() -> None:
    msgs = messages_for("hi", [], [], "Be brief.")
    assert "Cite" not in msgs[0]["content"] and msgs[0]["content"].endswith("Be brief.") and len(msgs) == 2
