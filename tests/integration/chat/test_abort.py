"""Background generation stops part-way through a step once cancelled (ChatModel.generate(abortable=True)), on the real
test model: nothing of the aborted step stays in the KV cache, and the slot answers as before afterwards."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from services.chat.model import PREFILL_STEP, ChatModel, ChatTemplate, Sampling
from services.chat.profiles import model_path

LONG = "Describe the lighthouse, its keeper, the ships and the weather of each season. " * 12


class SetAfter(threading.Event):
    """A cancel flag that reads as set from its ``n``-th look on: deterministic, whatever the machine's speed."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.looks = n, 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks >= self.n or super().is_set()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_path("smollm2-135m", "", tmp_path_factory.mktemp("models"))[1]


def answer(model: ChatModel, prompt: list[int]) -> str:
    parts: list[str] = []

    def emit(text: str) -> bool:
        parts.append(text)
        return True

    model.generate(prompt, [], Sampling(max_tokens=12), [], threading.Event(), emit)
    return "".join(parts)


@pytest.mark.parametrize("abortable", [True, False])
def test_a_cancelled_background_step_stops_part_way_and_the_slot_answers_as_before(model_file: Path, abortable: bool) -> None:
    model = ChatModel(model_file, 2048, 2, 0, 1.1, None)
    template = ChatTemplate(model_file)
    short = template.tokenize(template.render([{"role": "user", "content": "Name a colour."}]))
    long = template.tokenize(template.render([{"role": "user", "content": LONG}]))
    assert len(long) > 3 * PREFILL_STEP
    before = answer(model, short)
    kept = model.cached_prefix(long)  # the template's opening, from the answer above
    # The flag reads as set from its third look. Abortable: the first look is before the first step, the next ones
    # are llama.cpp's, inside it. Not abortable (an answer): the looks come between steps only, so two whole steps run.
    finish, produced = model.generate(long, [], Sampling(max_tokens=8), [], SetAfter(3), lambda _: True, abortable=abortable)
    assert (finish, produced) == ("cancelled", 0)
    if abortable:
        assert model.llm.n_tokens == kept  # the step was cut: none of its tokens counts as evaluated
    else:
        assert model.llm.n_tokens == kept + 2 * PREFILL_STEP
    assert answer(model, short) == before  # the slot's cache is consistent after the abort
