"""Near-duplicate text by word shingles (services/ingest/dedup.py): a copied paragraph is contained in its note, a
paraphrase or a same-topic note is not, and MinHash bands find near-identical documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from services.ingest import dedup

WRITTEN = json.loads((Path(__file__).resolve().parents[2] / "data" / "dedup" / "written.json").read_text())
RAFT = WRITTEN["notes"][0]
ELECTION = RAFT["body"].split("## Election\n\n", 1)[1].split("\n\n", 1)[0]


def test_a_paragraph_copied_out_of_a_note_is_wholly_in_it() -> None:
    note = dedup.shingles(RAFT["body"])
    assert dedup.containment(dedup.shingles(ELECTION), note) == 1.0
    # case, punctuation, bullets and spacing are not words
    reformatted = "\n".join(f"- {s.upper()}" for s in ELECTION.replace(",", " ;").split(". "))
    assert dedup.containment(dedup.shingles(reformatted), note) == 1.0
    # one word in fifteen changed still leaves well over the default share
    words = ELECTION.split()
    edited = " ".join("X" if i % 15 == 7 else w for i, w in enumerate(words))
    assert dedup.containment(dedup.shingles(edited), note) > 0.6


def test_a_paraphrase_and_a_same_topic_note_share_little() -> None:
    note = dedup.shingles(RAFT["body"])
    assert dedup.containment(dedup.shingles(RAFT["paraphrase"]), note) < 0.3
    assert dedup.containment(dedup.shingles(RAFT["same_topic"]["body"]), note) < 0.1
    # a note made of other text that quotes one sentence of the note is mostly new
    other = WRITTEN["notes"][1]["body"]
    quoting = other + "\n\n" + ELECTION.split(". ")[0]
    assert dedup.containment(dedup.shingles(quoting), note) < 0.25


def test_shingles_are_stable_across_processes_and_short_texts_count() -> None:
    # crc32, not Python's salted hash: bands stored by one process are compared by another
    assert dedup.shingles("Hello, world and more") == {3397805601, 2158135969}
    assert len(dedup.shingles("just two")) == 1 and dedup.shingles("") == set() and dedup.shingles("...") == set()
    assert dedup.shingles(["one two three", "four five six"]) == dedup.shingles("one two three") | dedup.shingles("four five six")


def test_near_identical_documents_share_a_band_and_different_ones_do_not() -> None:
    body = RAFT["body"]
    same = dedup.bands(dedup.shingles(body))
    assert len(same) == dedup.MINHASH // dedup.BAND_ROWS and same == dedup.bands(dedup.shingles(body))
    assert all(-(1 << 63) <= b < (1 << 63) for b in same)  # a PostgreSQL bigint each
    near = body.replace("Always run an odd number of members.", "Run an odd number of members, always.")
    assert dedup.jaccard(dedup.shingles(body), dedup.shingles(near)) > 0.9
    assert set(same) & set(dedup.bands(dedup.shingles(near)))
    for other in WRITTEN["notes"][1:]:
        assert not set(same) & set(dedup.bands(dedup.shingles(other["body"]))), other["title"]
    assert dedup.bands(set()) == []


def test_minhash_estimates_jaccard() -> None:
    rng = np.random.default_rng(1)
    a = set(int(x) for x in rng.integers(0, 1 << 32, 2000))
    b = set(list(a)[:1500]) | set(int(x) for x in rng.integers(0, 1 << 32, 500))
    estimate = float(np.mean(dedup.minhash(a) == dedup.minhash(b)))
    assert abs(estimate - dedup.jaccard(a, b)) < 0.15
