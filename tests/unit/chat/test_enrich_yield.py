"""Background enrichment never runs beside a question: it starts only on an idle model, and it stops for a question that
takes the other slot or waits for one. Checked on the real slot pool's counters."""

from __future__ import annotations

import asyncio

from services.chat.enrich import background_may_start, background_must_yield
from services.chat.slots import SlotPool


async def test_background_work_starts_on_an_idle_model_and_yields_to_any_question() -> None:
    pool = SlotPool(["slot-a", "slot-b"], depth=4)
    assert background_may_start(pool.busy, pool.waiting)
    enrichment = await pool.acquire()
    assert not background_must_yield(pool.busy, pool.waiting)  # alone: it goes on
    question = await pool.acquire()  # a free slot, no queue: the question does not wait, yet it shares the cores
    assert background_must_yield(pool.busy, pool.waiting)
    pool.release(enrichment)
    assert not background_may_start(pool.busy, pool.waiting)  # a question is being answered: the next one waits
    pool.release(question)
    assert background_may_start(pool.busy, pool.waiting)


async def test_on_one_slot_background_work_yields_to_a_waiting_question() -> None:
    pool = SlotPool(["only"], depth=4)
    enrichment = await pool.acquire()
    assert not background_must_yield(pool.busy, pool.waiting)
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    assert pool.waiting == 1 and background_must_yield(pool.busy, pool.waiting)
    pool.release(enrichment)
    assert await waiter == "only"
