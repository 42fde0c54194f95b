"""The answer filter: citation markers kept or dropped, stop strings, and overlap attribution."""

from __future__ import annotations

from services.chat.citations import AnswerFilter, attribute, content_words

SOURCES = {1: "Fill the kettle halfway with white vinegar and water, boil it and let it stand for an hour.",
           2: "Bicycle chains need dry lube in summer and wet lube in winter."}


def run(pieces: list[str], **kw: object) -> tuple[str, list[tuple[int, str]]]:
    f = AnswerFilter(SOURCES, **kw)  # type: ignore[arg-type]
    text, cites = "", []
    for p in pieces:
        out = f.feed(p)
        text, cites = text + out.text, cites + out.citations
    out = f.finish()
    return text + out.text, cites + out.citations


def test_valid_markers_are_kept_and_reported_once() -> None:
    text, cites = run(["Boil it", " [", "1", "]. Again [1", "]."], attribution=False)
    assert text == "Boil it [1]. Again [1]."
    assert cites == [(1, "model")]


def test_a_marker_naming_no_source_is_dropped_with_its_space() -> None:
    text, cites = run(["Use vinegar [7]. Lube [2, 9] chains."], attribution=False)
    assert text == "Use vinegar. Lube [2] chains."
    assert cites == [(2, "model")]


def test_unclosed_bracket_is_released_as_text_at_the_end() -> None:
    text, _ = run(["Array[3"], attribution=False)
    assert text == "Array[3"


def test_stop_string_ends_the_answer_even_across_pieces() -> None:
    f = AnswerFilter(SOURCES, stop=["\nQuestion:"], attribution=False)
    shown = f.feed("Boil it.\nQues").text
    assert shown == "Boil it."  # the newline and the prefix are held back
    assert f.feed("tion: what else?").text == "" and f.stopped
    assert f.answer == "Boil it."


def test_uncited_sentence_copied_from_a_source_is_attributed() -> None:
    text, cites = run(["Fill the kettle halfway with white", " vinegar and water.", " Then", " rest."])
    assert text == "Fill the kettle halfway with white vinegar and water.[1] Then rest."
    assert cites == [(1, "overlap")]


def test_sentence_cited_by_the_model_is_not_attributed_again() -> None:
    text, cites = run(["Chains need dry lube in summer and wet lube in winter. [2] Done."])
    assert text.count("[2]") == 1 and cites == [(2, "model")]


def test_last_sentence_is_attributed_at_the_end() -> None:
    text, cites = run(["Bicycle chains need dry lube in summer"])
    assert text.endswith("summer[2]") and cites == [(2, "overlap")]


def test_attribution_needs_enough_overlap() -> None:
    words = {n: content_words(t) for n, t in SOURCES.items()}
    assert attribute("The weather in Paris is lovely in spring.", words) is None
    assert attribute("Kettle.", words) is None  # too few words to judge
    assert attribute("Boil the kettle with vinegar and water", words) == 1
