"""Sentence support (services/chat/support.py): each sentence of an answer is traced to the lines of the source that
holds its words, the cited source preferred; a sentence no source holds is marked unsupported; short ones are not judged."""

from __future__ import annotations

from services.chat.prompt import Source
from services.chat.support import Sentence, spans, support, without_unsupported

STARTER = Source(1, "c1", "d1", "Sourdough", "/notes/sourdough.md", 10, 13,
                 "# Feeding\nFeed the rye starter twice a day.\nUse 50 g of rye flour and 50 g of water.\nKeep it at 24 degrees.")
OVEN = Source(2, "c2", "d2", "Oven", "/notes/oven.md", 1, 2, "Preheat the baking stone for forty minutes.\nSteam the oven for ten minutes.")


def test_sentences_keep_their_markers_and_leave_space_out() -> None:
    answer = "Feed it twice a day [1]. Preheat the stone.\n\nYes!"
    got = [answer[a:b] for a, b in spans(answer)]
    assert got == ["Feed it twice a day [1].", "Preheat the stone.", "Yes!"]
    assert spans("") == [] and spans("   ") == []


def test_each_sentence_points_at_its_lines_and_an_invented_one_is_unsupported() -> None:
    answer = ("Feed the rye starter twice a day [1]. Use 50 g of rye flour and 50 g of water. "
              "Preheat the baking stone for forty minutes [2]. The moon controls the yeast's mood completely. Yes.")
    found = support(answer, [STARTER, OVEN])
    texts = [answer[s.start:s.end] for s in found]
    assert texts[0].startswith("Feed the rye starter") and texts[-1] == "Yes."
    first, second, third, invented, short = found
    assert (first.supported, first.number, first.line_start, first.line_end) == (True, 1, 11, 11)
    assert (second.supported, second.number, second.line_start, second.line_end) == (True, 1, 12, 12)  # uncited, still traced
    assert (third.supported, third.number, third.line_start, third.line_end) == (True, 2, 1, 1)
    assert invented.supported is False and invented.number == 0 and invented.share < 0.5
    assert short == Sentence(short.start, short.end, None)


def test_the_cited_source_is_preferred_when_it_supports_the_sentence() -> None:
    twin = Source(3, "c3", "d3", "Twin", "/notes/twin.md", 5, 5, "Feed the rye starter twice a day, always.")
    answer = "Feed the rye starter twice a day [3]."
    assert support(answer, [STARTER, twin])[0].number == 3
    assert support("Feed the rye starter twice a day.", [STARTER, twin])[0].number == 1  # the first of equals, uncited


def test_a_source_whose_text_is_not_its_lines_gives_its_whole_range() -> None:
    trimmed = Source(1, "c1", "d1", "Trimmed", "/notes/t.md", 20, 40, "Feed the rye starter twice a day.")
    s = support("Feed the rye starter twice a day.", [trimmed])[0]
    assert s.supported and (s.line_start, s.line_end) == (20, 40)
    assert support("Feed the rye starter twice a day.", [])[0].supported is False


def test_a_passage_is_traced_to_its_lines_in_the_whole_chunk() -> None:
    passage = Source(1, "c1", "d1", "Sourdough", "/notes/sourdough.md", 10, 13, "Keep it at 24 degrees.")  # what the prompt held
    s = support("Keep it at 24 degrees always.", [passage], {"c1": STARTER.text})[0]
    assert s.supported and (s.line_start, s.line_end) == (13, 13)


def test_removing_unsupported_sentences_keeps_the_rest_and_moves_their_offsets() -> None:
    answer = ("Feed the rye starter twice a day [1]. The moon controls the yeast's mood completely.\n\n"
              "Preheat the baking stone for forty minutes [2]. Yes.")
    found = support(answer, [STARTER, OVEN])
    assert [s.supported for s in found] == [True, False, True, None]
    text, kept = without_unsupported(answer, found)
    assert text == "Feed the rye starter twice a day [1].\n\nPreheat the baking stone for forty minutes [2]. Yes."
    assert [text[s.start:s.end] for s in kept] == ["Feed the rye starter twice a day [1].", "Preheat the baking stone for forty minutes [2].", "Yes."]
    assert [s.number for s in kept] == [1, 2, 0] and kept[1].line_start == 1
    only_invented = "The moon controls the yeast's mood completely."
    assert without_unsupported(only_invented, support(only_invented, [STARTER])) == ("", [])


def test_a_removed_list_item_takes_its_number_with_it() -> None:
    answer = ("1. Feed the rye starter twice a day [1].\n2. The moon controls the yeast's mood completely.\n"
              "3. Preheat the baking stone for forty minutes [2].")
    found = support(answer, [STARTER, OVEN])
    text, kept = without_unsupported(answer, found)
    assert text == "1. Feed the rye starter twice a day [1].\n3. Preheat the baking stone for forty minutes [2]."
    assert all(text[s.start:s.end] in answer for s in kept)
