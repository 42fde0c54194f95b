"""Research mode's pure parts (services/chat/research.py): the plan read from the model's JSON, the coverage that stops
the searching, and the sources of every search interleaved, each chunk once."""

from __future__ import annotations

from services.chat.prompt import Source
from services.chat.research import MAX_QUERIES, coverage, merged, parse_plan


def src(chunk: str, text: str = "") -> Source:
    return Source(0, chunk, f"d-{chunk}", chunk, f"/notes/{chunk}.md", 1, 1, text or chunk)


def test_the_plan_is_the_distinct_new_queries_of_the_json() -> None:
    question = "How do I descale the kettle and oil the chain?"
    text = '{"queries": ["descale kettle", "Descale  kettle", "how do I descale the kettle and oil the chain?", "", "oil chain", "a b", "x y z", "w"]}'
    assert parse_plan(text, question) == ["descale kettle", "oil chain"][:MAX_QUERIES]
    assert parse_plan("not json", question) == [] and parse_plan('{"queries": "descale"}', question) == []
    assert parse_plan('[1, 2]', question) == [] and parse_plan('{"queries": [1, "chain lube"]}', question) == ["chain lube"]
    many = '{"queries": ["alpha one", "beta two", "gamma three", "delta four"]}'
    assert len(parse_plan(many, question)) == MAX_QUERIES


def test_coverage_is_the_share_of_the_question_words_the_sources_hold() -> None:
    question = "descale kettle vinegar chain lubricate"
    assert coverage(question, []) == 0.0
    assert coverage(question, [src("k", "Descale the kettle with vinegar.")]) == 0.6
    assert coverage(question, [src("k", "Descale the kettle with vinegar."), src("c", "Lubricate the chain.")]) == 1.0
    assert coverage("How?", []) == 1.0  # no content word: nothing to look for


def test_every_search_brings_its_best_first_each_chunk_once() -> None:
    question, first, second = [src("a"), src("b"), src("c")], [src("b"), src("d")], [src("e"), src("a"), src("f")]
    assert [s.chunk_id for s in merged([question, first, second], 10)] == ["a", "b", "e", "d", "c", "f"]
    assert [s.chunk_id for s in merged([question, first, second], 3)] == ["a", "b", "e"]
    assert merged([], 5) == []
