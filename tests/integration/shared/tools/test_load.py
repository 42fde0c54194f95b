"""`tessera load` against the real mesh and a bare echo server: requests built from the protos at run time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, ServiceProcess, child_env, key_md

from shared.ops.infra import free_port
from shared.runtime.config import Settings
from shared.tools.load import LoadError, make_target, run_load, summarize

PROTOS = ROOT / "protos" / "tessera" / "v1"


async def test_unary_round_robin_with_counts_latencies_and_codes(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    target = make_target(PROTOS / "search.proto", [], "tessera.v1.SearchService/Search",
                         [{"query": "kettle descaling", "top_k": 3}, {"query": "bike chain", "mode": "SEARCH_MODE_LEXICAL"}, {"query": ""}])
    assert len(target.requests) == 3 and not target.streaming
    s = summarize(await run_load(target, infra.address("search"), metadata=list(key_md(infra)), concurrency=4, total=30), target)
    assert s["count"] == 30 and s["status_codes"] == {"OK": 20, "INVALID_ARGUMENT": 10}
    assert any("query" in msg for msg in s["errors"]), s["errors"]  # the service's sentence, per message
    assert sum(b["count"] for b in s["histogram"]) == 30 and len(s["histogram"]) == 10
    lat = s["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"] and s["rps"] > 0


async def test_server_streaming_reports_first_message_and_message_rate(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    target = make_target(PROTOS / "chat.proto", [], "tessera.v1.ChatService.Chat",
                         {"messages": [{"role": "user", "content": "Say hello."}], "rag": False, "max_tokens": 6})
    assert target.streaming
    s = summarize(await run_load(target, infra.address("chat"), metadata=list(key_md(infra)), concurrency=2, total=4), target)
    assert s["count"] == 4 and s["status_codes"] == {"OK": 4}
    stream = s["stream"]
    assert stream["messages"] >= 4 * 2 and stream["messages_per_s"] > 0  # tokens and a done event per answer
    assert 0 < stream["first_message_ms"]["p50"] <= s["latency_ms"]["max"]


async def test_rate_limit_and_duration_bound_the_load(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    target = make_target(PROTOS / "embed.proto", [], "tessera.v1.EmbedService/GetModel", {})
    s = summarize(await run_load(target, infra.address("embed"), metadata=list(key_md(infra)), concurrency=8, total=None, duration=1.0, rps=20), target)
    assert 1 <= s["count"] <= 21 and s["status_codes"].get("OK") == s["count"]  # the schedule issues at most rps × duration + 1


@pytest.mark.parametrize(("call", "data", "words"), [
    ("tessera.v1.SearchService/Nope", {}, "has no method 'Nope'"),
    ("tessera.v1.Missing/Search", {}, "no service 'tessera.v1.Missing'"),
    ("Search", {}, "is not pkg.Service/Method"),
    ("tessera.v1.SearchService/Search", {"qeury": "x"}, "does not fit tessera.v1.SearchRequest"),
    ("tessera.v1.SearchService/Search", [], "empty list"),
])
def test_bad_calls_and_requests_are_refused_with_a_sentence(call: str, data: object, words: str) -> None:
    with pytest.raises(LoadError, match=words.replace(".", r"\.").replace("(", r"\(")):
        make_target(PROTOS / "search.proto", [], call, data)


def test_client_streaming_methods_and_missing_protos_are_refused() -> None:
    with pytest.raises(LoadError, match="takes a client stream"):
        make_target(PROTOS / "tensor.proto", [], "tessera.v1.TensorService/Resample", {})
    with pytest.raises(LoadError, match="does not exist"):
        make_target(PROTOS / "nothing.proto", [], "a.B/C", {})


def test_cli_against_a_bare_echo_server(infra: Settings, tmp_path: Path) -> None:
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "shared.tools.load_echo", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert echo.stdout is not None and "echo server" in echo.stdout.readline()
        data = tmp_path / "queries.json"
        data.write_text(json.dumps([{"query": f"q{i}"} for i in range(5)]))
        base = [sys.executable, "-m", "shared.cli", "load", "--proto", str(PROTOS / "search.proto"), "--call",
                "tessera.v1.SearchService/Search", "-D", str(data), "-c", "4", "-n", "50", "--connections", "2", f"127.0.0.1:{port}"]
        run = subprocess.run([*base, "-O", "json"], cwd=ROOT, env=child_env(infra), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        s = json.loads(run.stdout.strip().splitlines()[-1])
        assert s["count"] == 50 and s["status_codes"] == {"OK": 50} and s["call"] == "/tessera.v1.SearchService/Search"
        run = subprocess.run(base, cwd=ROOT, env=child_env(infra), capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and "Requests/s:" in run.stdout and "[OK] 50 responses" in run.stdout and "Histogram" in run.stdout
        bad = subprocess.run([*base[:-1], "-d", "{not json", f"127.0.0.1:{port}"], cwd=ROOT, env=child_env(infra), capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and "give -d or --data-file, not both" in bad.stdout
    finally:
        echo.terminate()
        echo.wait(10)
