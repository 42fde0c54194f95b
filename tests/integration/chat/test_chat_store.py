"""Chat's SQL (its store module) against the real PostgreSQL, without the services."""

from __future__ import annotations

import uuid

from psycopg_pool import AsyncConnectionPool

from services.chat.store import ChatStore, NewTurn
from shared.contracts import FINISH_FAILED, FINISH_GENERATING


async def test_chat_store_keeps_turns_and_sweeps_answers_of_dead_processes(pool: AsyncConnectionPool) -> None:
    alive, dead = ChatStore(pool, "tessera-chat-alive"), ChatStore(pool, f"tessera-chat-gone-{uuid.uuid4().hex[:6]}")
    conversation = str(uuid.uuid4())
    assert await alive.history(conversation) is None
    await alive.store_question(NewTurn(conversation, True, "Kettle?", "How do I descale a kettle?", 40), "00000000-0000-4000-8000-00000000a001")
    await alive.store_answer(conversation, "00000000-0000-4000-8000-00000000a001", "Citric acid [1].", [{"number": 1}], "stop", 5)
    assert await alive.history(conversation) == [("user", "How do I descale a kettle?"), ("assistant", "Citric acid [1].")]
    answer = str(uuid.uuid4())
    await dead.store_question(NewTurn(conversation, False, "", "And the filter?", 30), answer)
    async with pool.connection() as conn:
        await conn.execute("UPDATE messages SET created_at = now() - interval '10 seconds' WHERE id = %s", (answer,))
    assert await alive.sweep_failed() >= 1
    found = await alive.conversation(conversation)
    assert found is not None
    conv, rows = found
    assert conv["title"] == "Kettle?" and next(r for r in rows if r["id"] == answer)["finish_reason"] == FINISH_FAILED
    assert FINISH_GENERATING not in [r["finish_reason"] for r in rows]
    assert next(r for r in rows if r["content"] == "Citric acid [1].")["citations"] == [{"number": 1}]
    assert conversation in [c["id"] for c in await alive.conversations(500)]
    assert await alive.conversation(str(uuid.uuid4())) is None
