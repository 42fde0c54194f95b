"""The chaos runner's client side, against a real HTTP server on loopback that plays each failure: a stall measured
between data events (keep-alives do not reset it), a stream that ends without `done` or `error` counted as cut, a cut
answer retried to a complete one (retried, not lost) or never completed (lost), retryable statuses retried, an
undocumented one flagged, an exception in a load loop counted, and a fault plan that stops every service."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shared.ops.infra import free_port
from shared.runtime.config import SERVICES, load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import chaos

SCRIPT: dict[str, list[str]] = {}   # path -> what each successive request gets


async def _sse(kind: str) -> AsyncIterator[bytes]:
    if kind == "pinging":  # an answer that hangs 1.5 s but keeps the connection alive with comments
        yield b"event: token\ndata: {\"text\": \"a\"}\n\n"
        for _ in range(6):
            await asyncio.sleep(0.25)
            yield b": keep-alive\n\n"
        yield b"event: done\ndata: {}\n\n"
    elif kind == "cut":  # tokens, then the end of the body with no terminal event
        yield b"event: token\ndata: {\"text\": \"a\"}\n\n"
    elif kind == "done":
        yield b"event: token\ndata: {\"text\": \"a\"}\n\nevent: done\ndata: {}\n\n"


async def chat(request: Request) -> Response:
    kind = SCRIPT["chat"].pop(0) if len(SCRIPT["chat"]) > 1 else SCRIPT["chat"][0]
    return StreamingResponse(_sse(kind), media_type="text/event-stream")


async def search(request: Request) -> Response:
    status = int(SCRIPT["search"].pop(0) if len(SCRIPT["search"]) > 1 else SCRIPT["search"][0])
    if status == 200:
        return JSONResponse({"hits": []})
    message = "search is restarting; try again" if status == 503 else "Traceback (most recent call last): boom"
    return JSONResponse({"error": {"message": message}}, status_code=status)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/api/v1/chat", chat, methods=["POST"]),
                                                          Route("/api/v1/search", search, methods=["POST"])]),
                                        host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 10
    while not srv.started and time.monotonic() < end:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(5)


@pytest.fixture
def run(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> chaos.Run:
    monkeypatch.setattr(chaos, "RETRIES", 3)

    async def quick_retry(r: chaos.Run, attempt: int) -> None:
        r.retried += 1

    monkeypatch.setattr(chaos, "before_retry", quick_retry)
    return chaos.Run(load_settings({"TESSERA_DATA_DIR": str(tmp_path)}), server)


async def test_a_stall_is_measured_between_data_events_not_keep_alives(run: chaos.Run) -> None:
    SCRIPT["chat"] = ["pinging"]
    async with httpx.AsyncClient(timeout=10) as http:
        outcome = await chaos.answer_once(run, http, {"question": "q"})
    assert outcome == ("done", None, "")
    assert run.stall >= 1.4 and "before done" in run.stall_where, (run.stall, run.stall_where)


async def test_a_stream_without_a_terminal_event_is_cut(run: chaos.Run) -> None:
    SCRIPT["chat"] = ["cut"]
    async with httpx.AsyncClient(timeout=10) as http:
        outcome, status, message = await chaos.answer_once(run, http, {"question": "q"})
    assert (outcome, status) == ("cut", "connect") and "without done or error" in message


async def test_a_cut_answer_asked_again_to_the_end_is_retried_and_one_never_finished_is_lost(
        run: chaos.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    async def once(r: chaos.Run, name: str, step: Any, pause_s: float) -> None:
        await step()

    monkeypatch.setattr(chaos, "loop", once)  # one question per call

    async def one_question(http: httpx.AsyncClient) -> None:
        await chaos.chats(run, http)

    async with httpx.AsyncClient(timeout=10) as http:
        SCRIPT["chat"] = ["cut", "done"]
        await one_question(http)
        assert run.streams == {"complete": 0, "retried": 1, "lost": 0}
        SCRIPT["chat"] = ["cut"]
        await one_question(http)
    assert run.streams == {"complete": 0, "retried": 1, "lost": 1}


async def test_retryable_statuses_are_retried_and_an_undocumented_one_is_bad(run: chaos.Run) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        SCRIPT["search"] = ["503", "200"]
        assert await chaos.http_call(run, http, "search", "POST", "/api/v1/search", {}) == {"hits": []}
        assert run.retried == 1 and run.bad == [] and run.errors[0]["status"] == 503
        SCRIPT["search"] = ["503"]
        assert await chaos.http_call(run, http, "search", "POST", "/api/v1/search", {}) is None
        assert "still failing after 3 attempts" in run.bad[-1]["message"]
        SCRIPT["search"] = ["500"]
        await chaos.http_call(run, http, "search", "POST", "/api/v1/search", {})
    assert run.bad[-1]["status"] == 500 and len(run.bad) == 2  # a 500 with a traceback: undocumented and a leak


async def test_an_exception_in_a_load_loop_is_counted_and_the_loop_goes_on(run: chaos.Run) -> None:
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            run.stop.set()
        raise ValueError(f"step {calls}")

    await chaos.loop(run, "probe", step, 0.0)
    assert calls == 3 and len(run.exceptions) == 3 and "ValueError: step 1" in run.exceptions[0]


def test_the_quick_plan_stops_every_service_with_both_signals_and_restarts_each_server() -> None:
    chaos.random.seed(20261201)
    plan = chaos.fault_plan(quick=True)
    stopped = {(kind, target if isinstance(target, str) else target[0]) for kind, target in plan if kind in ("kill", "rolling")}
    assert {t for _, t in stopped} == set(SERVICES) and len(stopped) == len(SERVICES)
    assert {k for k, _ in stopped} == {"kill", "rolling"}  # SIGKILL and SIGTERM (pm2's rolling restart) alternate
    assert plan[0] == ("redis", None) and {"postgres", "nats", "nats-outage"} <= {k for k, _ in plan}
