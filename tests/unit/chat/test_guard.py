"""The repetition guard: a looping answer stops, ordinary prose with citations does not."""

from __future__ import annotations

from services.chat.guard import NGRAM, TIMES, RepetitionGuard


def feed_all(tokens: list[str]) -> tuple[bool, int]:
    guard = RepetitionGuard()
    for i, t in enumerate(tokens):
        if guard.feed(t):
            return True, i + 1
    return False, len(tokens)


def test_a_repeated_sentence_stops_at_its_third_appearance() -> None:
    sentence = [" The", " leader", " is", " chosen", " by", " random", " selection", " of", " a", " candidate", "."]
    looping, at = feed_all(sentence * 5)
    assert looping
    # The third copy of the first 10-token run completes at 2 full sentences + NGRAM tokens.
    assert at == 2 * len(sentence) + NGRAM


def test_a_short_cycle_is_caught_quickly() -> None:
    looping, at = feed_all(["D", "-", "L", "-"] * 40)
    assert looping and at <= NGRAM + 2 * 4


def test_case_and_spacing_do_not_hide_a_loop() -> None:
    sentence = [" Rinse", " it", " twice", " with", " clean", " water", ".", " Then", " boil", " it", "."]
    variants = sentence + [t.upper() for t in sentence] + [t.strip() for t in sentence]
    assert feed_all(variants)[0]


def test_prose_with_repeated_citations_is_not_a_loop() -> None:
    text = ("Raft elects a leader with randomized election timeouts [1]. A candidate increments its term and votes for itself [1]. "
            "It becomes leader with votes from a majority [1]. A server votes only for a candidate whose log is up to date [1]. "
            "Heartbeats from the leader keep followers from starting elections [2]. The leader replicates entries to the others [1].")
    tokens = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
    assert feed_all(tokens) == (False, len(tokens))


def test_punctuation_only_runs_never_count() -> None:
    assert not feed_all(["|", "---", "|", "---", "|"] * 30)[0]


def test_looping_stays_true() -> None:
    guard = RepetitionGuard(n=2, times=TIMES)
    for t in ["a", "b"] * 3:
        guard.feed(t)
    assert guard.looping and guard.feed("anything")
