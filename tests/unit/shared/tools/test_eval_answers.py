"""The answer eval's arithmetic and its golden file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.contracts import NOT_IN_NOTES
from shared.errors import ConfigError
from shared.tools.eval_answers import Outcome, Question, load_questions, research_summary, summarize

GOLDEN = Path(__file__).resolve().parents[4] / "tests" / "data" / "answers"


def q(answerable: bool = True, facts: tuple[str, ...] = ("93",), source: str = "coffee.md") -> Question:
    return Question("What temperature?", source if answerable else "", facts if answerable else (), answerable)


def test_summary_counts_each_figure_over_its_own_questions() -> None:
    outcomes = [
        Outcome(q(), answer="It brews at 93 degrees [1].", cited=["coffee.md"], finish="stop", ttft_ms=400, gen_s=2.0, tokens=11,
                supported=2, retrieve_ms=30, prefill_ms=300),
        Outcome(q(facts=("18", "36")), answer="18 grams [1].", cited=["other.md"], finish="loop", ttft_ms=600, gen_s=1.0, tokens=6,
                supported=1, unsupported=1),
        Outcome(q(), answer=NOT_IN_NOTES + "\nClosest notes:\n- x", finish="abstained", ttft_ms=5),
        Outcome(q(answerable=False), answer=NOT_IN_NOTES, finish="abstained", ttft_ms=4),
        Outcome(q(answerable=False), answer="Canberra.", finish="stop", ttft_ms=500, gen_s=0.5, tokens=3),
    ]
    s = summarize(outcomes, "smollm2-135m")
    assert s["questions"] == 5
    assert s["source_cited"] == round(1 / 3, 4)
    assert s["fact_recall"] == round(2 / 4, 4)  # 93, 18 of 93, 18, 36, 93
    assert s["abstention"] == 0.5 and s["false_abstention"] == round(1 / 3, 4)
    assert s["loops"] == 1
    assert s["ttft_ms_p50"] == 500  # generated answers only: 400, 600, 500
    assert s["tokens_per_s"] == round((10 + 5 + 2) / 3.5, 2)
    assert s["profile"] == "smollm2-135m"
    assert (s["supported_sentences"], s["unsupported_sentences"], s["supported_share"]) == (3, 1, 0.75)
    assert s["retrieve_ms"] == 0.0 and s["prefill_ms"] == 0.0  # the p50 of 30, 0, 0 and of 300, 0, 0


def test_the_golden_set_is_well_formed() -> None:
    questions = load_questions(GOLDEN / "questions.json")
    notes = {p.name for p in (GOLDEN / "notes").glob("*.md")}
    assert len(questions) >= 60
    unanswerable = [x for x in questions if not x.answerable]
    assert len(unanswerable) >= 15 and 0.15 <= len(unanswerable) / len(questions) <= 0.35
    assert sum(x.multi_hop for x in questions) >= 10
    for x in questions:
        if x.answerable:
            assert set(x.needs) <= notes and x.facts, x
            texts = [(GOLDEN / "notes" / n).read_text().lower() for n in x.needs]
            assert all(any(f.lower() in t for t in texts) for f in x.facts), x  # every fact is really in a note it names
            if x.multi_hop:  # and each note it names holds one of its facts: it needs them all
                assert all(any(f.lower() in t for f in x.facts) for t in texts), x


def test_the_held_out_split_is_apart_and_balanced() -> None:
    tune, test = load_questions(GOLDEN / "questions.json", "tune"), load_questions(GOLDEN / "questions.json", "test")
    assert {x.split for x in tune} == {"tune"} and {x.split for x in test} == {"test"}
    assert not {x.question for x in tune} & {x.question for x in test}
    assert len(test) >= 20 and 0.15 <= sum(not x.answerable for x in test) / len(test) <= 0.4
    assert sum(x.multi_hop for x in test) >= 4 and sum(x.multi_hop for x in tune) >= 4
    assert len(load_questions(GOLDEN / "questions.json")) == len(tune) + len(test)


def test_a_split_with_no_question_or_an_unknown_split_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text('[{"question": "q?", "source": "a.md", "facts": ["x"], "split": "tune"}]')
    with pytest.raises(ConfigError, match="no question in the 'test' split"):
        load_questions(path, "test")
    path.write_text('[{"question": "q?", "source": "a.md", "facts": ["x"], "split": "train"}]')
    with pytest.raises(ConfigError, match="split must be one of tune, test"):
        load_questions(path)


@pytest.mark.parametrize(("content", "words"), [
    ("not json", "not JSON"), ("[]", "non-empty"), ('[{"question": ""}]', "no question"),
    ('[{"question": "q?", "answerable": true}]', "names no source"), ('[{"question": "q?", "source": "a.md", "facts": "x"}]', "facts"),
])
def test_a_bad_file_is_refused_with_a_sentence(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "q.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=words):
        load_questions(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_questions(tmp_path / "missing.json")


def test_a_multi_hop_question_is_cited_only_when_every_note_it_needs_is() -> None:
    two = Question("Both?", "a.md", ("vinegar", "lube"), True, "tune", ("a.md", "b.md"))
    assert two.multi_hop and two.needs == ("a.md", "b.md")
    assert not Outcome(two, answer="vinegar [1]", cited=["a.md"]).source_cited
    assert Outcome(two, answer="vinegar [1], lube [2]", cited=["b.md", "a.md"]).source_cited
    assert research_summary([]) is None
    block = research_summary([Outcome(two, answer="vinegar and lube", cited=["a.md", "b.md"], seconds=8.0),
                              Outcome(two, answer="only vinegar", cited=["a.md"], seconds=12.0)])
    assert block == {"questions": 2, "fact_recall": 0.75, "all_cited": 0.5, "seconds_p50": 10.0, "seconds_max": 12.0}
    assert summarize([Outcome(q(), answer="93 [1]", cited=["coffee.md"])], "p")["research"] is None


def test_sources_must_be_file_names(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text('[{"question": "q?", "sources": ["a.md", 3], "facts": ["x"]}]')
    with pytest.raises(ConfigError, match="sources must be a list of file names"):
        load_questions(path)
    path.write_text('[{"question": "q?", "sources": ["a.md", "b.md"], "facts": ["x"]}]')
    assert load_questions(path)[0].source == "a.md"
