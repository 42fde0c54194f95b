"""A note's form decides its type where it speaks (services/chat/kinds.py): code is a snippet, a stated choice is a
decision, and a 'decision' the note never states becomes a bug or an insight."""

from __future__ import annotations

import pytest

from services.chat.kinds import code_share, kind_by_form, settle

SHELL = "```sh\ndocker system prune --all --force\n```\nFrees space on the build box."
UNFENCED = "kubectl logs -f deployment/api --since=10m\nFollows the api pods' logs."
DECIDED = "Decision: the billing service stores its data in PostgreSQL. Reasons: transactions and a stable schema."
BUG = "The worker's memory grew until the OOM killer stopped it. Root cause: images were never closed. Fix: close them."
LESSON = "Pairing a new engineer with a buddy shortened their first change by three days. Idea: make it the default."


def test_code_share_counts_fences_and_command_lines() -> None:
    assert code_share(SHELL) == pytest.approx(3 / 4) and code_share(UNFENCED) == 0.5 and code_share(LESSON) == 0.0 and code_share("") == 0.0


@pytest.mark.parametrize(("text", "kind"), [(SHELL, "snippet"), (UNFENCED, "snippet"), (DECIDED, "decision"), (BUG, ""), (LESSON, "")])
def test_form(text: str, kind: str) -> None:
    assert kind_by_form(text) == kind


@pytest.mark.parametrize(("model", "text", "kept"), [
    ("decision", SHELL, "snippet"), ("reference", DECIDED, "decision"), ("decision", BUG, "bug"), ("decision", LESSON, "insight"),
    ("reference", LESSON, "reference"), ("bug", BUG, "bug"),
])
def test_settle_keeps_the_models_type_unless_the_form_says_otherwise(model: str, text: str, kept: str) -> None:
    assert settle(model, text) == kept
