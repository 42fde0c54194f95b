"""The lexical analyzer: the same terms at ingest and at query time."""

from __future__ import annotations

from shared.runtime import analyzer


def test_words_are_lowercased_stemmed_and_stop_words_dropped() -> None:
    assert analyzer.terms("The Kettles were descaled, and THEN rinsed!") == ["kettl", "descal", "rins"]
    assert analyzer.terms("Aerodynamics of slip-streams") == ["aerodynam", "slip", "stream"]


def test_single_characters_punctuation_and_stop_words_alone_give_nothing() -> None:
    for text in ("", "?!…—", "a b c", "the of and to", "x = 1 + 2", "\x00\x01"):
        assert analyzer.terms(text) == [], text


def test_unicode_words_are_terms_and_long_tokens_are_cut() -> None:
    assert analyzer.terms("café naïve") == ["café", "naïv"]
    assert analyzer.terms("日本語のテキスト") == ["日本語のテキスト"]
    (long,) = analyzer.terms("a" * 500)
    assert len(long) == analyzer.MAX_TERM_CHARS


def test_counts_lengths_and_bounded_queries() -> None:
    counts, length = analyzer.term_counts("kettle kettles KETTLE scale")
    assert counts == {"kettl": 3, "scale": 1} and length == 4
    assert analyzer.query_terms("water water boils") == {"water": 2, "boil": 1}
    q = analyzer.query_terms(" ".join(f"word{i}" for i in range(200)) + " word0", max_terms=64)
    assert len(q) == 64 and q["word0"] == 2, "the first 64 distinct terms are kept and counted"
