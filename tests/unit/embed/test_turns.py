"""One embedding turn: small documents whole and first, a large one up to the budget, the rest queued again."""

from __future__ import annotations

import uuid

from services.embed.server import take_turn

A, B, C = (uuid.UUID(int=i) for i in (1, 2, 3))


def rows(doc: uuid.UUID, n: int) -> list[tuple[str, str, str, uuid.UUID]]:
    return [(f"{doc.int}-{i}", "", f"text {i}", doc) for i in range(n)]


def test_everything_fits_in_one_turn() -> None:
    now, later = take_turn(rows(A, 3) + rows(B, 2), budget=10)
    assert [c[0] for c in now] == ["2-0", "2-1", "1-0", "1-1", "1-2"] and later == []


def test_small_documents_go_first_and_the_large_one_gets_what_is_left() -> None:
    now, later = take_turn(rows(A, 50) + rows(B, 3) + rows(C, 4), budget=10)
    assert [c[0] for c in now] == ["2-0", "2-1", "2-2", "3-0", "3-1", "3-2", "3-3", "1-0", "1-1", "1-2"]
    assert later == [A]


def test_a_document_larger_than_the_budget_alone_gets_the_whole_budget_in_order() -> None:
    now, later = take_turn(rows(A, 25), budget=10)
    assert [c[0] for c in now] == [f"1-{i}" for i in range(10)] and later == [A]


def test_documents_past_the_budget_wait_untouched() -> None:
    now, later = take_turn(rows(A, 10) + rows(B, 10) + rows(C, 10), budget=10)
    assert [c[0] for c in now] == [f"1-{i}" for i in range(10)] and later == [B, C]  # equal sizes: queue order


def test_nothing_waiting_is_an_empty_turn() -> None:
    assert take_turn([], budget=10) == ([], [])
