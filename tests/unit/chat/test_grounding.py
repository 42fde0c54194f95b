"""Grounding: the relevance floor decides whether to answer; passages keep what matches the question."""

from __future__ import annotations

from services.chat.grounding import focus, focused, not_in_notes, supported, terms
from services.chat.prompt import Source
from shared.contracts import NOT_IN_NOTES


def src(n: int, relevance: float, text: str = "text") -> Source:
    return Source(number=n, chunk_id=f"c{n}", document_id=f"d{n}", title=f"Doc {n}", path=f"notes/{n}.md", line_start=3, line_end=9,
                  text=text, relevance=relevance)


def test_only_sources_at_or_above_the_floor_support_an_answer() -> None:
    sources = [src(1, 0.2), src(2, 0.5), src(3, 0.35), src(4, 0.34)]
    assert [s.number for s in supported(sources, 0.35)] == [2, 3]
    assert supported([src(1, 0.1), src(2, 0.0)], 0.35) == []


def test_the_fixed_reply_lists_the_closest_hits_with_their_lines() -> None:
    text = not_in_notes([("Kettle", "notes/kettle.md", 5, 9), ("", "notes/x.md", 1, 2)])
    assert text.startswith(NOT_IN_NOTES)
    assert "- Kettle (notes/kettle.md:5-9)" in text and "- notes/x.md (notes/x.md:1-2)" in text
    assert not_in_notes([]) == NOT_IN_NOTES


def test_terms_drop_stopwords_and_plural_s() -> None:
    assert terms("How are the Leaders elected in Raft clusters?") == {"leader", "elected", "raft", "cluster"}


def test_a_short_text_is_kept_whole() -> None:
    assert focus("Short note about kettles.", "kettle", 700) == "Short note about kettles."


def test_focus_keeps_matching_sentences_in_order_within_the_limit() -> None:
    filler = " ".join(f"Filler sentence number {i} says nothing useful here." for i in range(30))
    text = f"{filler} The espresso machine brews at 93 degrees. It uses 18 grams for a double shot. {filler}"
    out = focus(text, "What temperature does the espresso machine brew at?", 300)
    assert "brews at 93 degrees" in out and len(out) <= 300 + 10
    assert out.index("93 degrees") < out.index("18 grams")  # the neighbour follows in its order


def test_focus_without_a_match_keeps_the_beginning() -> None:
    text = "Alpha beta gamma. " * 100
    out = focus(text, "zebra", 120)
    assert out.startswith("Alpha beta gamma.") and len(out) <= 125


def test_focused_sources_keep_their_citation_fields() -> None:
    long = "Unrelated words here. " * 60 + "Raft uses randomized election timeouts."
    [s] = focused([src(1, 0.6, long)], "How does raft elect?", 200)
    assert "randomized election timeouts" in s.text
    assert (s.chunk_id, s.path, s.line_start, s.line_end, s.number) == ("c1", "notes/1.md", 3, 9, 1)
