"""Background work yields to people (shared/runtime/foreground.py), over the session's real NATS: an answer announced
by one process is heard by another, which waits while it lasts and counts the wait; a search holds briefly; an
announcement from a process that died lapses; a cap bounds the wait of work that must not starve."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prometheus_client import REGISTRY

from shared.runtime import bus, foreground
from shared.runtime.config import Settings
from shared.runtime.foreground import Foreground


def counted(worker: str, kind: str) -> float:
    return REGISTRY.get_sample_value("tessera_background_yields_total", {"worker": worker, "kind": kind}) or 0.0


def paused(worker: str) -> float:
    return REGISTRY.get_sample_value("tessera_background_paused", {"worker": worker}) or 0.0


async def sent(fg: Foreground) -> None:
    """What ``fg`` announced so far has reached the NATS server: announcements are fire and forget, so a test that
    waits to hear one first makes sure it left (CI, stop 52: a search's announcement was not heard within 5 s)."""
    assert fg.nc is not None and fg.nc.is_connected, "the announcing connection is down"
    await asyncio.gather(*fg._sending)
    await fg.nc.flush(timeout=5)


async def heard(fg: Foreground, kinds: tuple[str, ...], want: bool, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while bool(fg.busy(kinds)) != want:
        assert time.monotonic() < end, (f"busy({kinds}) never became {want}: {fg.busy_until}; listener connected "
                                        f"{fg.nc is not None and fg.nc.is_connected}, stats {fg.nc.stats if fg.nc else None}")
        await asyncio.sleep(0.02)


async def test_an_answer_in_one_process_pauses_background_work_in_another(infra: Settings) -> None:
    chat_nc = await bus.connect(infra, f"chat-{uuid.uuid4().hex[:6]}")
    embed_nc = await bus.connect(infra, f"embed-{uuid.uuid4().hex[:6]}")
    chat, embed = Foreground(chat_nc, "chat-test"), Foreground(embed_nc, "embed-test")
    await embed.listen()
    try:
        assert embed.busy() == [] and await embed.yield_to_people("test-embed", {"chat": None}) == 0.0
        before = counted("test-embed", "chat")
        waiter: asyncio.Task[float] | None = None
        async with chat.answering():
            await sent(chat)
            await heard(embed, ("chat",), True)
            waiter = asyncio.create_task(embed.yield_to_people("test-embed", {"chat": None}))
            await asyncio.sleep(foreground.BEAT_LAPSE_S + 0.5)  # the beats keep it busy past the first announcement's hold
            assert not waiter.done() and paused("test-embed") == 1.0
            assert embed.busy(("search",)) == []  # only the kinds asked for
        waited = await asyncio.wait_for(waiter, foreground.CHAT_LINGER_S + 2)
        assert waited >= foreground.BEAT_LAPSE_S and paused("test-embed") == 0.0
        assert counted("test-embed", "chat") == before + 1
    finally:
        await embed.close()
        await chat.close()
        await chat_nc.close()
        await embed_nc.close()


async def test_searches_hold_briefly_a_dead_sender_lapses_and_a_cap_bounds_the_wait(infra: Settings) -> None:
    nc = await bus.connect(infra, f"search-{uuid.uuid4().hex[:6]}")
    listener_nc = await bus.connect(infra, f"enrich-{uuid.uuid4().hex[:6]}")
    search, listener = Foreground(nc, "search-test"), Foreground(listener_nc, "enrich-test")
    await listener.listen()
    try:
        await search.searched()
        await sent(search)
        await heard(listener, ("search",), True)
        await heard(listener, ("search",), False, timeout=foreground.SEARCH_HOLD_S + 1)
        # embedding outranks enrichment: its steps announce themselves too, and only those who ask for it wait
        await search.embedding()
        await sent(search)
        await heard(listener, ("embed",), True)
        assert listener.busy() == []  # chat and search by default
        await heard(listener, ("embed",), False, timeout=foreground.EMBED_HOLD_S + 1)
        # a chat process that dies mid-answer sends no end: its last beat lapses
        await search._say("chat", foreground.BEAT_LAPSE_S)
        await sent(search)
        await heard(listener, ("chat",), True)
        started = time.monotonic()
        await heard(listener, ("chat",), False, timeout=foreground.BEAT_LAPSE_S + 1)
        assert time.monotonic() - started <= foreground.BEAT_LAPSE_S + 1
        # embedding's cap: it waits at most its limit, then goes on while people are still busy
        await search._say("chat", 30)
        await sent(search)
        await heard(listener, ("chat",), True)
        waited = await listener.yield_to_people("test-capped", {"chat": 0.5})
        assert 0.5 <= waited < 5 and listener.busy(("chat",)) == ["chat"]
        # nonsense on the subject is ignored
        await nc.publish("tessera.activity", b"{not json")
        await nc.publish("tessera.activity", b'{"sender": "x", "kind": "chat", "hold_s": 1e9}')
        await nc.flush()
        await asyncio.sleep(0.2)
        assert ("x", "chat") not in listener.busy_until
    finally:
        await listener.close()
        await nc.close()
        await listener_nc.close()


@pytest.mark.parametrize("kinds", [("chat",), ("search",)])
def test_busy_lists_only_kinds_asked_for(kinds: tuple[str, ...]) -> None:
    fg = Foreground(None, "alone")
    fg.hold("someone", kinds[0], 5)
    assert fg.busy(kinds) == [kinds[0]] and fg.busy(tuple(k for k in foreground.KINDS if k not in kinds)) == []
