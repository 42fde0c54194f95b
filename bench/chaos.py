"""A bounded fault-injection run against an isolated mesh (loopback only): `make chaos`.

A mixed workload runs throughout, through the gateway as a user's clients would:
* note captures (POST /api/v1/notes), each with a unique token;
* a folder ingest of ``--docs`` documents (POST /api/v1/ingest), followed to the end;
* searches (lexical and hybrid);
* chat answers streamed over SSE;
* tensor jobs (the SDK over QUIC), checked bit for bit against the untiled result.

Meanwhile faults are injected one at a time, each followed by recovery:
* every service is stopped, SIGKILL and SIGTERM (pm2 restart) in turn: once each with ``--quick``, four times
  each (two of each signal) otherwise;
* restarts of PostgreSQL, NATS and Redis;
* a NATS outage of ``--nats-outage-s`` seconds;
* Redis down for the rest of the run (it is a cache: nothing may fail because of it).

At the end it checks:
* every acknowledged capture and every ingested file is searchable, lexically and by vector, exactly once;
* no chunk is left without its embedding;
* no client waited more than 5 s between data events (a keep-alive is not data: an answer that only pings stalls);
* a streamed answer ends with ``done`` or ``error``; one that the client sees end without either, or cut by a
  fault, is asked again: complete then, it counts as retried, otherwise as lost (``lost_streams``);
* every error a client saw is a documented status with a sentence; a retryable one (UNAVAILABLE, 502, 503, a
  refused connection while a process restarts) is retried, and a request that never succeeds is a bad error;
* a tensor job is bit-identical, after retries of UNAVAILABLE;
* every exception in a load loop is counted and printed (``loop_exceptions``);
* every service was SERVING again within 10 s of each fault.

The last line is JSON: faults, faults_per_service, acknowledged, lost, dup, lost_streams,
retried_streams, max_client_stall_s, bad_errors, loop_exceptions, max_recovery_s, plus the per-fault table.
``--quick`` is the CI form (in `make test`). The run stops by itself: a watchdog ends it after ``--limit-s`` seconds,
and the mesh is taken down in every case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import isolated_settings, tessera

from services.tensor.kernels import Plan, output_length, resample
from shared.client import Client
from shared.client.tensor import ResampleResult, Stitcher, check_complete, spec_for
from shared.errors import StatusError
from shared.ops.infra import embedded_servers
from shared.ops.pm2 import Pm2
from shared.runtime import secrets
from shared.runtime.config import SERVICES, Settings
from shared.runtime.status import check_service

STALL_LIMIT_S = 5.0
RECOVERY_LIMIT_S = 10.0
#: HTTP statuses the API documents (ERROR_RESPONSES); anything else a client sees is a bad error.
DOCUMENTED_HTTP = {400, 401, 403, 404, 409, 413, 422, 429, 502, 503, 504}
#: gRPC codes a streamed answer or a tensor job may end with.
DOCUMENTED_CODES = {"INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED",
                    "FAILED_PRECONDITION"}
#: What a client may retry: a process restarting under it (HTTP 502/503, UNAVAILABLE, a refused or cut connection).
RETRYABLE = {502, 503, "UNAVAILABLE", "connect"}
RETRIES = 8
#: The SSE events that carry data; the last of a complete stream is one of TERMINAL. Keep-alives are comments.
DATA_EVENTS = {"token", "citation", "done", "error"}
TERMINAL = {"done", "error"}
LEAKS = ("Unexpected", "Traceback", "<class", "Exception", "Error:")
WORDS = [
    "kettle", "vinegar", "descale", "chain", "lubricate", "bicycle", "sourdough", "starter", "flour", "water", "oven",
    "bread", "compost", "garden", "tomato", "basil", "pruning", "winter", "battery", "voltage", "solder", "resistor",
    "capacitor", "router", "firmware", "backup", "snapshot",
]


@dataclass
class Run:
    settings: Settings
    gw: str
    started: float = field(default_factory=time.monotonic)
    captures: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)
    stall: float = 0.0
    stall_where: str = ""
    faults: list[dict[str, Any]] = field(default_factory=list)
    tensor: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retried: int = 0
    streams: dict[str, int] = field(default_factory=lambda: {"complete": 0, "retried": 0, "lost": 0})
    exceptions: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    def waited(self, seconds: float, where: str) -> None:
        if seconds > self.stall:
            self.stall, self.stall_where = seconds, f"{where} at t={self.now()}"

    def error(self, kind: str, status: Any, message: str) -> None:
        entry = {"at": self.now(), "kind": kind, "status": status, "message": message[:300]}
        self.errors.append(entry)
        documented = status in DOCUMENTED_HTTP or status in DOCUMENTED_CODES or status == "connect"
        if not documented or not message.strip() or any(leak in message for leak in LEAKS):
            self.bad.append(entry)

    def exception(self, where: str, exc: BaseException) -> None:
        """An exception a load loop did not expect: counted, printed, and the loop goes on."""
        line = f"{where} at t={self.now()}: {type(exc).__name__}: {exc}"
        self.exceptions.append(line[:300])
        print(f"  exception in {line}", flush=True)


async def before_retry(run: Run, attempt: int) -> None:
    """A client's pause before its next attempt (0.5 s, 1 s, 1.5 s, ...), counted."""
    run.retried += 1
    await asyncio.sleep(0.5 * (attempt + 1))


async def loop(run: Run, name: str, step: Any, pause_s: float) -> None:
    """Run ``step()`` until the run stops, every ``pause_s``; an exception is counted, never swallowed."""
    while not run.stop.is_set():
        try:
            await step()
        except Exception as exc:  # noqa: BLE001 — boundary: a load loop's step; counted in loop_exceptions, which fails the run
            run.exception(name, exc)
        await asyncio.sleep(pause_s)


# -- the workload ------------------------------------------------------------------------------------------------------

async def http_call(run: Run, http: httpx.AsyncClient, kind: str, method: str, path: str, body: Any = None,
                    headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    """One request, retried while its failure is retryable (a process restarting under it). Each attempt's time counts
    as a wait (a 5 s answer is a stall); errors are classified; one that is still retryable after RETRIES attempts is
    a bad error (the mesh did not come back for it)."""
    run.requests += 1
    for attempt in range(RETRIES):
        start = time.monotonic()
        try:
            r = await http.request(method, run.gw + path, json=body, headers=headers)
        except httpx.TransportError as exc:  # the gateway process itself is down (killed or restarting)
            status, message = "connect", str(exc) or type(exc).__name__
        else:
            if r.status_code < 400:
                run.waited(time.monotonic() - start, kind)
                result: dict[str, Any] = r.json()
                return result
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text
            status = r.status_code
        run.waited(time.monotonic() - start, kind)
        run.error(kind, status, message)
        if status not in RETRYABLE:
            return None
        if attempt + 1 < RETRIES:
            await before_retry(run, attempt)
    run.bad.append({"at": run.now(), "kind": kind, "status": status, "message": f"still failing after {RETRIES} attempts: {message[:200]}"})
    return None


async def captures(run: Run, http: httpx.AsyncClient, every_s: float) -> None:
    n = 0

    async def one() -> None:
        nonlocal n
        n += 1
        token = f"chaoscap{n}x{uuid.uuid4().hex[:10]}"
        words = " ".join(random.choice(WORDS) for _ in range(30))
        body = f"Note {n} of the chaos run, token {token}.\n\n{words}\n"
        # force: bags of the same few words can look like near-duplicates, and each capture must be stored to be checked.
        # The Idempotency-Key: a retry after a cut connection replaces the note the first attempt may have stored.
        reply = await http_call(run, http, "capture", "POST", "/api/v1/notes",
                                {"title": f"Chaos note {n}", "body": body, "project": "chaos", "tags": ["chaos"], "force": True},
                                headers={"Idempotency-Key": f"chaos-{token}"})
        if reply is not None:
            run.captures.append({"token": token, "document_id": reply["document_id"], "body": body, "kind": "capture"})

    await loop(run, "capture", one, every_s)


async def searches(run: Run, http: httpx.AsyncClient) -> None:
    async def one() -> None:
        query = " ".join(random.sample(WORDS, 3))
        await http_call(run, http, "search", "POST", "/api/v1/search",
                        {"query": query, "mode": random.choice(["hybrid", "lexical"]), "top_k": 5, "bypass_cache": True})

    await loop(run, "search", one, 0.3)


async def answer_once(run: Run, http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, Any, str]:
    """One streamed answer: ("done" | "error" | "cut", status, message). The wait between data events counts as a
    stall; a keep-alive (an SSE comment) is not data, so an answer that hangs while pinging shows as a stall."""
    start = last = time.monotonic()
    try:
        async with http.stream("POST", run.gw + "/api/v1/chat", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                run.waited(time.monotonic() - start, "chat (refused)")
                try:
                    return "error", r.status_code, r.json()["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    return "error", r.status_code, r.text
            event, ended = "", ""
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in DATA_EVENTS:
                    now = time.monotonic()
                    run.waited(now - last, f"chat stream (before {event})")
                    last = now
                    if event == "error":
                        data = json.loads(line[5:])
                        return "error", data.get("code"), data.get("message", "")
                    if event in TERMINAL:
                        ended = event
            run.waited(time.monotonic() - last, "chat stream (its end)")
            return (ended, None, "") if ended else ("cut", "connect", "the stream ended without done or error")
    except httpx.TransportError as exc:
        run.waited(time.monotonic() - last, "chat (connection)")
        return "cut", "connect", str(exc) or type(exc).__name__


async def chats(run: Run, http: httpx.AsyncClient) -> None:
    """Streamed answers; one cut by a fault (or refused as unavailable) is asked again, as a client would."""
    async def one() -> None:
        body = {"question": f"What do my notes say about {random.choice(WORDS)}?", "max_tokens": 24, "filters": {"project": "chaos"},
                "purpose": "bench"}
        run.requests += 1
        for attempt in range(RETRIES):
            outcome, status, message = await answer_once(run, http, body)
            if outcome == "done":
                run.streams["retried" if attempt else "complete"] += 1
                return
            run.error("chat stream" if outcome == "cut" else "chat", status, message)
            if status not in RETRYABLE:
                return  # a documented refusal (e.g. every slot busy): the client is told, nothing was lost
            await before_retry(run, attempt)
        run.streams["lost"] += 1

    await loop(run, "chat", one, 0.5)


async def tensor_once(run: Run, v: np.ndarray, zoom: tuple[float, float, float], want: np.ndarray) -> str:
    try:
        async with Client(run.settings, transport="quic") as client:
            out, result = Stitcher(lambda shape, dtype: np.empty(shape, dtype=dtype)), ResampleResult()
            async for event in await client.resample(spec_for("keys", zoom=zoom, tile_shape=(1, 6, 7, 0)), v):
                out.feed(event, result)
            check_complete(result)
        return "identical" if np.array_equal(out.output, want) else "DIFFERENT"
    except StatusError as exc:
        run.error("tensor", exc.code, exc.message)
        return exc.code


async def tensor_jobs(run: Run, every_s: float) -> None:
    """A job checked bit for bit; UNAVAILABLE (tensor or its scheduler restarting) is retried until it is identical."""
    rng = np.random.default_rng(7)

    async def one() -> None:
        v = rng.standard_normal((2, 12, 14, 10)).astype(np.float32)
        zoom = (1.5, 1.25, 2.0)
        plan = Plan("keys", np.dtype(np.float32), v.shape, (2, *(output_length(n, z) for n, z in zip(v.shape[1:], zoom, strict=True))))  # type: ignore[arg-type]
        want = resample(np, v, plan)
        outcome = "UNAVAILABLE"
        for attempt in range(RETRIES):
            outcome = await tensor_once(run, v, zoom, want)
            if outcome != "UNAVAILABLE":
                break
            await before_retry(run, attempt)
        run.tensor[outcome] = run.tensor.get(outcome, 0) + 1
        if outcome != "identical":
            run.bad.append({"at": run.now(), "kind": "tensor", "status": outcome, "message": f"tensor job {outcome}"})

    await loop(run, "tensor", one, every_s)


async def folder_ingest(run: Run, http: httpx.AsyncClient, folder: Path) -> dict[str, Any]:
    """Start the folder ingest and follow it; a job left unfinished by a killed ingest is started again (as a user's
    `tessera ingest` would be): unchanged files are skipped, the rest are done."""
    attempts, job = 0, None
    while not run.stop.is_set() and attempts < 20:
        attempts += 1
        job = await http_call(run, http, "ingest", "POST", "/api/v1/ingest", {"path": str(folder), "project": "chaosdocs"})
        if job is None:
            await asyncio.sleep(1.0)
            continue
        last_change, seen = time.monotonic(), None
        while not run.stop.is_set():
            state = await http_call(run, http, "ingest job", "GET", f"/api/v1/jobs/{job['job_id']}?files=false")
            if state is not None:
                if state["done"]:
                    return {"attempts": attempts, **state["counts"]}
                if state["counts"] != seen:
                    seen, last_change = state["counts"], time.monotonic()
            if time.monotonic() - last_change > 12.0:
                break  # no progress: its ingest process was killed; start the folder again
            await asyncio.sleep(0.5)
    return {"attempts": attempts, "unfinished": True}


# -- the faults --------------------------------------------------------------------------------------------------------

async def all_serving(settings: Settings, since: float, limit: float = 60.0) -> float:
    """Seconds from ``since`` until every service reports SERVING (checked every 0.2 s)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        states = await asyncio.gather(*(check_service(settings, s, timeout=1.0) for s in SERVICES))
        if all(s["status"] == "SERVING" for s in states):
            return round(time.monotonic() - since, 2)
        await asyncio.sleep(0.2)
    return float("inf")


def pids(pm2: Pm2, name: str) -> list[int]:
    return [a["pid"] for a in pm2.apps() if a["name"] == name and a["pid"]]


async def kill(run: Run, pm2: Pm2, service: str) -> dict[str, Any]:
    before = await asyncio.to_thread(pids, pm2, service)
    t = time.monotonic()
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 60
    for _ in range(600):  # until pm2 has started a new process (health must not be read from the dying one)
        await asyncio.sleep(0.1)
        now = await asyncio.to_thread(pids, pm2, service)
        if (now and not set(now) & set(before)) or time.monotonic() > end:
            break
    return {"fault": "SIGKILL", "target": service, "recovery_s": await all_serving(run.settings, t)}


async def rolling_restart(run: Run, pm2: Pm2, services: list[str]) -> list[dict[str, Any]]:
    out = []
    for service in services:
        t, errors = time.monotonic(), len(run.errors)
        await asyncio.to_thread(pm2.run, "restart", service)
        out.append({"fault": "SIGTERM restart", "target": service, "recovery_s": await all_serving(run.settings, t),
                    "at_s": run.now(), "client_errors": len(run.errors) - errors})
    return out


async def restart_infra(run: Run, name: str, outage_s: float = 0.0) -> dict[str, Any]:
    server = next(s for s in embedded_servers(run.settings) if s.name == name)
    await asyncio.to_thread(server.stop)
    if outage_s:
        await asyncio.sleep(outage_s)
    t = time.monotonic()
    await asyncio.to_thread(server.start)
    return {"fault": f"{name} {'outage ' + str(outage_s) + ' s' if outage_s else 'restart'}", "target": name,
            "recovery_s": await all_serving(run.settings, t)}


def fault_plan(quick: bool) -> list[tuple[str, Any]]:
    """Every service stopped by SIGKILL and by SIGTERM in turn (once each with quick, else twice per signal), in a
    random order with the infrastructure's restarts among them; Redis first (down for the rest of the run)."""
    rounds = 1 if quick else 4
    stops: list[tuple[str, Any]] = []
    for r in range(rounds):
        order = random.sample(SERVICES, len(SERVICES))
        stops += [("kill" if (i + r) % 2 == 0 else "rolling", [s] if (i + r) % 2 else s) for i, s in enumerate(order)]
    infra: list[tuple[str, Any]] = [("postgres", None), ("nats", None), ("nats-outage", None)]
    plan = stops + infra
    random.shuffle(plan)
    return [("redis", None), *plan]


async def faults(run: Run, quick: bool, nats_outage_s: float) -> None:
    pm2 = Pm2(run.settings)
    for kind, target in fault_plan(quick):
        await asyncio.sleep(random.uniform(1.0, 3.0) if quick else random.uniform(2.0, 6.0))
        at = run.now()
        errors_before = len(run.errors)
        if kind == "kill":
            results = [await kill(run, pm2, target)]
        elif kind == "rolling":
            results = await rolling_restart(run, pm2, target)
        elif kind == "redis":
            results = [await restart_infra(run, "redis")]
            server = next(s for s in embedded_servers(run.settings) if s.name == "redis")
            await asyncio.to_thread(server.stop)  # and down for the rest of the run: it is only a cache
            results.append({"fault": "redis down (rest of run)", "target": "redis", "recovery_s": await all_serving(run.settings, time.monotonic())})
        elif kind == "nats-outage":
            results = [await restart_infra(run, "nats", nats_outage_s)]
        else:
            results = [await restart_infra(run, kind)]
        for r in results:
            r.setdefault("at_s", at)
            r.setdefault("client_errors", len(run.errors) - errors_before)
            run.faults.append(r)
            print(f"  t={at:6.1f}s  {r['fault']:<26} {r['target']:<10} back in {r['recovery_s']} s, "
                  f"{r['client_errors']} client errors", flush=True)


# -- the checks --------------------------------------------------------------------------------------------------------

async def invariants(run: Run, http: httpx.AsyncClient, docs: dict[str, str], wait_s: float) -> dict[str, Any]:
    """Lost and duplicated documents, chunks without embeddings (after waiting for the sweeper)."""
    import psycopg

    expected = run.captures + [{"token": t, "body": b, "kind": "file", "document_id": ""} for t, b in docs.items()]
    end = time.monotonic() + wait_s
    async with await psycopg.AsyncConnection.connect(secrets.database_url(run.settings)) as conn:
        while True:
            row = await (await conn.execute("SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM chunk_vectors v"
                                            " WHERE v.chunk_id = c.id)), count(*) FROM chunks c")).fetchone()
            unembedded, chunks = row if row else (0, 0)
            if not unembedded or time.monotonic() > end:
                break
            await asyncio.sleep(2.0)
        dup_paths = (await (await conn.execute(
            "SELECT count(*) FROM (SELECT path FROM documents GROUP BY project, path HAVING count(*) > 1) d")).fetchone() or (0,))[0]
    lost, duplicates, vector_missed = [], 0, []
    for item in expected:
        lexical = await http_call(run, http, "check", "POST", "/api/v1/search",
                                  {"query": item["token"], "mode": "lexical", "top_k": 10, "bypass_cache": True})
        hits = (lexical or {}).get("hits", [])
        matching = {h["document_id"] for h in hits if item["token"].lower() in h["snippet"].lower()}
        if not matching:
            lost.append(item["token"])
            continue
        duplicates += len(matching) - 1
        vector = await http_call(run, http, "check", "POST", "/api/v1/search",
                                 {"query": item["body"][:1000], "mode": "vector", "top_k": 5, "bypass_cache": True,
                                  "filters": {"project": "chaos" if item["kind"] == "capture" else "chaosdocs"}})
        if not {h["document_id"] for h in (vector or {}).get("hits", [])} & matching:
            vector_missed.append(item["token"])
    return {"expected": len(expected), "lost": len(lost), "lost_tokens": lost[:10], "duplicates": duplicates + int(dup_paths),
            "vector_missed": len(vector_missed), "vector_missed_tokens": vector_missed[:10], "chunks": chunks,
            "chunks_without_embedding": int(unembedded)}


def write_docs(folder: Path, n: int) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    docs = {}
    for i in range(n):
        token = f"chaosdoc{i}x{uuid.uuid4().hex[:8]}"
        body = f"# Document {i}\n\nReference {token}.\n\n" + " ".join(rng.choice(WORDS) for _ in range(120)) + "\n"
        (folder / f"doc-{i:04d}.md").write_text(body)
        docs[token] = body
    return docs


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = isolated_settings(TESSERA_GATEWAY_KEEPALIVE_S="1", TESSERA_EMBED_SWEEP_INTERVAL_S="5", TESSERA_EMBED_SWEEP_AGE_S="10",
                                 TESSERA_GRACE_S="3")
    folder = settings.path("imports", "chaos")
    docs = write_docs(folder, args.docs)
    print(f"chaos: mesh in {settings.path()}; {args.docs} documents to ingest", flush=True)
    await asyncio.to_thread(tessera, settings, "up", "--timeout", "300")
    run = Run(settings, f"http://127.0.0.1:{settings.gateway_port}")
    try:
        limits = httpx.Timeout(30.0, connect=5.0)
        key = secrets.ensure(settings, secrets.ADMIN_KEY)  # made by `tessera up`, read as the CLI reads it
        async with httpx.AsyncClient(timeout=limits, headers={"Authorization": f"Bearer {key}"}) as http:
            workers = [asyncio.create_task(captures(run, http, 0.5 if args.quick else 1.0)), asyncio.create_task(searches(run, http)),
                       asyncio.create_task(chats(run, http)), asyncio.create_task(tensor_jobs(run, 10.0 if args.quick else 20.0))]
            ingest = asyncio.create_task(folder_ingest(run, http, folder))
            await faults(run, args.quick, args.nats_outage_s)
            await asyncio.sleep(2.0)
            run.stop.set()
            for name, ended in zip(("captures", "searches", "chats", "tensor"), await asyncio.gather(*workers, return_exceptions=True), strict=True):
                if isinstance(ended, BaseException):  # a loop that ended on its own is a failure of the run, not a quiet gap
                    run.exception(f"{name} (the loop itself)", ended)
            ingest_result = await asyncio.wait_for(ingest, 120) if not ingest.done() else ingest.result()
            if ingest_result.get("unfinished"):
                run.stop.clear()
                ingest_result = await asyncio.wait_for(folder_ingest(run, http, folder), 180)
            await all_serving(settings, time.monotonic())
            checks = await invariants(run, http, docs, wait_s=60.0)
    finally:
        await asyncio.to_thread(tessera, settings, "down")
    recovery = [f["recovery_s"] for f in run.faults]
    per_service = {name: sum(1 for f in run.faults if f["target"] == name and not f["fault"].startswith("redis down"))
                   for name in (*SERVICES, "postgres", "nats", "redis")}
    lost = checks["lost"] + checks["vector_missed"]
    return {"faults": len(run.faults), "faults_per_service": per_service, "acknowledged": len(run.captures) + len(docs),
            "lost": lost + run.streams["lost"], "lost_documents": lost, "lost_streams": run.streams["lost"],
            "retried_streams": run.streams["retried"], "complete_streams": run.streams["complete"], "retried_requests": run.retried,
            "dup": checks["duplicates"], "loop_exceptions": len(run.exceptions), "exceptions": run.exceptions[:10],
            "max_client_stall_s": round(run.stall, 2), "bad_errors": len(run.bad),
            "max_recovery_s": max(recovery) if recovery else 0.0, "captures": len(run.captures), "files": len(docs),
            "chunks": checks["chunks"], "chunks_without_embedding": checks["chunks_without_embedding"], "stall_where": run.stall_where,
            "requests": run.requests, "client_errors": len(run.errors), "tensor_jobs": run.tensor, "ingest": ingest_result,
            "lost_tokens": checks["lost_tokens"], "vector_missed_tokens": checks["vector_missed_tokens"], "bad": run.bad[:10], "errors_seen": run.errors[-12:],
            "table": run.faults, "quick": args.quick, "duration_s": run.now()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the CI form: every service stopped once, each server restarted")
    parser.add_argument("--docs", type=int, default=300, help="documents in the folder ingest")
    parser.add_argument("--nats-outage-s", type=float, default=10.0)
    parser.add_argument("--limit-s", type=float, default=570.0, help="the run ends by itself after this long")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--stall-limit-s", type=float, default=STALL_LIMIT_S, help="longest wait between data events a client may see")
    args = parser.parse_args()
    random.seed(args.seed)
    print(f"chaos: seed {args.seed}", flush=True)
    try:
        report = asyncio.run(asyncio.wait_for(main_async(args), args.limit_s))
    except TimeoutError:
        raise SystemExit(f"chaos: the run passed its limit of {args.limit_s} s and was stopped") from None
    print(f"\n{'fault':<26}{'target':<11}{'at s':>8}{'back in s':>11}{'client errors':>15}")
    for f in report["table"]:
        print(f"{f['fault']:<26}{f['target']:<11}{f['at_s']:>8}{f['recovery_s']:>11}{f['client_errors']:>15}")
    ok = (report["lost"] == 0 and report["dup"] == 0 and report["bad_errors"] == 0 and report["max_client_stall_s"] <= args.stall_limit_s
          and report["max_recovery_s"] <= RECOVERY_LIMIT_S and report["chunks_without_embedding"] == 0 and report["loop_exceptions"] == 0
          and all(report["faults_per_service"].values()))
    print(f"chaos: {'PASS' if ok else 'FAIL'}")
    print(json.dumps(report))
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
