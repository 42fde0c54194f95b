"""The pure parts of knowledge upkeep: enrichment output, type mapping, recency, clusters, the review's schedule and
the questions it asks, watched files."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from services.chat.enrich import SCHEMA, BadOutput, messages, parse_output
from services.ingest.parse import parse
from services.ingest.watch import watched
from services.scheduler import calendar
from services.search import clusters as cl
from services.search.knowledge import emerging, logged_search, questions
from services.search.server import recency_factor
from shared.contracts import KIND_OF_TYPE, KINDS, enrich_enabled
from shared.errors import ConfigError
from shared.gen.tessera.v1 import common_pb2, search_pb2
from shared.tools.eval_enrich import score, tag_match


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


def test_frontmatter_types_map_onto_the_five_kinds_and_the_users_fields_are_known() -> None:
    assert set(KIND_OF_TYPE.values()) == set(KINDS)
    assert KIND_OF_TYPE["meeting"] == "decision" and KIND_OF_TYPE["paper"] == "reference" and "note" not in KIND_OF_TYPE
    p = parse(b"---\ntitle: Mine\ntype: howto\ntags: [a]\n---\nbody text\n", "x.md")
    assert p.kind == "snippet" and p.user_fields == {"title", "type", "tags"} and not p.warnings
    bare = parse(b"just a line of text\n", "notes/idea.md")
    assert bare.kind == "" and bare.user_fields == frozenset() and bare.title == "idea"  # the file name: the model may title it
    headed = parse(b"# A heading\n\ntext\n", "y.md")
    assert headed.user_fields == {"title"}
    assert parse(b"---\ntype: decision\n---\nx\n", "z.md").warnings == []  # the five are known types
    assert parse(b"a  b\n\nc", "1.md").body_hash == parse(b"---\ntitle: t\n---\na b c\n", "2.md").body_hash


def test_enrich_setting_is_on_off_or_projects() -> None:
    assert enrich_enabled("on", "x") and not enrich_enabled("off", "x") and not enrich_enabled("", "x")
    assert enrich_enabled("home, work", "work") and not enrich_enabled("home,work", "play")


def test_recency_halves_per_half_life() -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert recency_factor(now, now, 30) == 1.0
    assert recency_factor(now - dt.timedelta(days=30), now, 30) == pytest.approx(0.5)
    assert recency_factor(now - dt.timedelta(days=90), now, 30) == pytest.approx(0.125)
    assert recency_factor(now + dt.timedelta(days=1), now, 30) == 1.0  # a clock ahead never boosts


def test_clusters_find_the_groups_and_keep_their_ids() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    x = np.concatenate([c + 0.05 * rng.normal(size=(10, 32)) for c in centres])
    labels, centroids = cl.cluster(x, k=3)
    assert len(set(labels[:10])) == len(set(labels[10:20])) == len(set(labels[20:])) == 1 and len(set(labels)) == 3
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    assert cl.k_for(8) == 2 and cl.k_for(5000) == 50 and cl.k_for(10**6) == 60
    old = {7: {"a", "b", "c"}, 9: {"d", "e"}}
    assert cl.stable_ids({0: {"d", "e", "f"}, 1: {"a", "b"}, 2: {"z"}}, old, iter([100, 101])) == {0: 9, 1: 7, 2: 100}
    assert cl.stable_ids({0: {"a", "b", "c", "d", "e"}, 1: {"q"}}, old, iter([100])) == {0: 7, 1: 100}  # one old id per new cluster
    merges = cl.merge_suggestions([1, 2, 3], np.array([[1.0, 0], [0.99, 0.1], [0, 1.0]]), 0.9)
    assert [(m.a, m.b) for m in merges] == [(1, 2)]


def test_cluster_names_are_their_most_distinctive_terms() -> None:
    names = cl.ctfidf_names({0: ["espresso grinder espresso", "espresso shot and the grinder"],
                             1: ["kubernetes pod restarts", "kubernetes deployment pod"]}, top=2)
    assert names[0] == ["espresso", "grinder"] and names[1] == ["kubernetes", "pod"]
    assert cl.name_of(["a", "b", "c", "d"]) == "a, b, c" and cl.name_of([]) == "unnamed"


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


def test_searches_are_logged_with_whether_they_found_something_close() -> None:
    req = search_pb2.SearchRequest(query="q", filters=common_pb2.Filters(project="p"))
    hit = search_pb2.Hit(source=common_pb2.SourceRef(document_id="d1"), signals=[search_pb2.Signal(name="vector", score=0.3, rank=1)])
    far = logged_search(req, search_pb2.SearchResponse(hits=[hit]), floor=0.4)
    assert not far.answered and far.top_score == pytest.approx(0.3) and far.documents == [("d1", 1)] and far.project == "p"
    hit.signals[0].score = 0.7
    assert logged_search(req, search_pb2.SearchResponse(hits=[hit]), floor=0.4).answered
    assert not logged_search(req, search_pb2.SearchResponse(), floor=0.4).answered


def test_the_review_always_asks_three_questions() -> None:
    qs = questions([{"query": "quantum"}], [{"name": "espresso, grinder"}], [{"a": "A", "b": "B"}], [])
    assert len(qs) == 3 and "quantum" in qs[0] and "espresso" in qs[1] and '"A"' in qs[2]
    assert len(questions([], [], [], [])) == 3


def test_watched_files() -> None:
    assert watched("/n/a.md") and watched("/n/b.pdf") and watched("/n/c.txt")
    assert not watched("/n/.hidden.md") and not watched("/n/a.md.tmp") and not watched("/n/a.md~") and not watched("/n/x.py")


def test_enrichment_scores() -> None:
    assert tag_match("postgresql", ["postgres"]) and tag_match("code-review", ["code review"]) and not tag_match("docker", ["kubernetes"])
    rows = [{"type": "bug", "predicted_type": "bug", "tags": ["safari", "cookies"], "predicted_tags": ["cookie"], "state": "enriched"},
            {"type": "insight", "predicted_type": "reference", "tags": ["x"], "predicted_tags": [], "state": "enriched"}]
    s = score(rows)
    assert s["type_accuracy"] == 0.5 and s["tag_overlap"] == 0.25 and s["confusion"]["insight"] == {"reference": 1}


class ScriptedModel:
    """A generator slot that answers from a script: the retry policy's input, not a language model."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.calls = answers, 0

    def generate(self, prompt: list[int], messages: list[dict[str, str]], sampling: Any, stop: list[str], cancel: Any,
                 emit: Any, schema: dict[str, Any] | None = None) -> tuple[str, int]:
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


def test_emerging_clusters() -> None:
    rows = [{"name": "new", "size": 4, "fresh": 3}, {"name": "growing", "size": 23, "fresh": 3},
            {"name": "where the week went", "size": 45, "fresh": 6}, {"name": "quiet", "size": 900, "fresh": 2},
            {"name": "one", "size": 2, "fresh": 1}]
    assert [c["name"] for c in emerging(rows)] == ["where the week went", "growing", "new"]

