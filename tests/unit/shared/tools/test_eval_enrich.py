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


def test_precision_and_faithfulness() -> None:
    from shared.tools.eval_enrich import facts, unsupported

    note = "Bug: users on Safari 17 are sent back to the login page. Fix: set Secure on the cookie. Deployed in 2.3.1."
    # a sentence's first word is not taken for a name
    assert facts("Safari 17 rejected the cookie. Deployed in 2.3.1 by the SRE team.") == ["17", "2.3.1", "SRE"]
    assert unsupported("Safari 17 rejected the cookie; fixed in 2.3.1.", note) == []
    assert unsupported("Users of Chrome 17 were stuck; fixed in 2.4.0.", note) == ["Chrome", "2.4.0"]
    rows = [{"title": "Login loop", "text": note, "type": "bug", "predicted_type": "bug", "tags": ["safari"], "state": "enriched",
             "predicted_tags": ["safari", "cookies", "kubernetes"], "entities": [{"name": "Safari", "kind": "technology"}],
             "predicted_entities": ["Safari 17", "Chrome"], "summary": "Safari 17 looped on login until the cookie was Secure."}]
    s = score(rows)
    assert s["tag_precision"] == round(2 / 3, 3) and s["entity_precision"] == 0.5 and s["faithfulness"] == 1.0


def test_the_labelled_notes_split_into_tune_and_a_held_out_test() -> None:
    from shared.contracts import KINDS

    tune, test = load_notes(DEFAULT, "tune"), load_notes(DEFAULT, "test")
    assert not {n["title"] for n in tune} & {n["title"] for n in test}
    assert len(tune) + len(test) == len(load_notes(DEFAULT))
    for part in (tune, test):  # every type is in each split, as often as the others
        counts = {k: sum(n["type"] == k for n in part) for k in KINDS}
        assert min(counts.values()) >= 9 and max(counts.values()) - min(counts.values()) <= 1, counts
    assert len(tune) + len(test) >= 100 and all("entities" in n for n in tune + test)


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
