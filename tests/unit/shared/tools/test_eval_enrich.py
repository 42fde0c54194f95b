"""The enrichment eval's scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.tools.eval_enrich import DEFAULT, load_notes, score, tag_match


def test_enrichment_scores() -> None:
    assert tag_match("postgresql", ["postgres"]) and tag_match("code-review", ["code review"]) and not tag_match("docker", ["kubernetes"])
    rows = [{"type": "bug", "predicted_type": "bug", "tags": ["safari", "cookies"], "predicted_tags": ["cookie"], "state": "enriched"},
            {"type": "insight", "predicted_type": "reference", "tags": ["x"], "predicted_tags": [], "state": "enriched"}]
    s = score(rows)
    assert s["type_accuracy"] == 0.5 and s["tag_overlap"] == 0.25 and s["confusion"]["insight"] == {"reference": 1}


def test_the_labelled_notes_split_into_tune_and_a_held_out_test() -> None:
    from shared.contracts import KINDS

    tune, test = load_notes(DEFAULT, "tune"), load_notes(DEFAULT, "test")
    assert not {n["title"] for n in tune} & {n["title"] for n in test}
    assert len(tune) + len(test) == len(load_notes(DEFAULT))
    for part in (tune, test):  # every type is in each split, as often as the others
        counts = {k: sum(n["type"] == k for n in part) for k in KINDS}
        assert min(counts.values()) >= 2 and max(counts.values()) == min(counts.values()), counts


@pytest.mark.parametrize(("content", "words"), [
    ("{", "not JSON"), ("{}", "non-empty JSON list of notes"), ('[{"title": "t", "type": "bug"}]', "a title, a text and a type"),
    ('[{"title": "t", "text": "x", "type": "bug", "split": "dev"}]', "split must be one of tune, test"),
    ('[{"title": "t", "text": "x", "type": "bug"}]', None),
])
def test_a_bad_notes_file_is_refused_with_a_sentence(tmp_path: Path, content: str, words: str | None) -> None:
    path = tmp_path / "notes.json"
    path.write_text(content)
    if words is None:  # no split: tune; asking for the held-out split of a file without one is refused
        assert load_notes(path)[0]["split"] == "tune"
        with pytest.raises(ConfigError, match="no note in the 'test' split"):
            load_notes(path, "test")
        return
    with pytest.raises(ConfigError, match=words):
        load_notes(path)
