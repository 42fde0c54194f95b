"""Session fixtures: real PostgreSQL, NATS and Valkey on free ports, once per
session, and every service running against them as a real process."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ADMIN, Launcher, ServiceProcess, admin_headers, make_settings, mesh_channel, wait_serving
from seeds import SEED

from shared.gen.tessera.v1 import ingest_pb2, ingest_pb2_grpc
from shared.ops.infra import embedded_servers, start_all, stop_all
from shared.runtime.config import SERVICES, Settings

_ast_parse = ast.parse


def _ast_parse_again_on_a_false_mismatch(*args: Any, **kwargs: Any) -> Any:
    """CPython 3.11 (3.11.7 here and in CI) keeps the AST constructor's recursion depth in state that threads share
    (python/cpython#106905): an ast.parse in one thread while another formats a traceback can raise
    "SystemError: AST constructor recursion depth mismatch". pytest parses the test's source to report a failure, so
    that one failure became an INTERNALERROR and ended the whole run (CI, stop 25). The parse is repeated instead."""
    for _ in range(5):
        try:
            return _ast_parse(*args, **kwargs)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
    return _ast_parse(*args, **kwargs)


ast.parse = _ast_parse_again_on_a_false_mismatch


def pytest_report_header() -> str:
    return f"random inputs: TEST_SEED={SEED}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    report = yield
    if report.failed:
        report.sections.append(("random inputs", f"this run's seed: rerun with TEST_SEED={SEED}"))
    return report


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Real PostgreSQL + pgvector, NATS + JetStream and Valkey, once per session."""
    settings = make_settings(tmp_path_factory.mktemp("tessera"))
    start_all(settings)
    ADMIN.update(admin_headers(settings))
    try:
        yield settings
    finally:
        stop_all(settings)


@pytest.fixture(scope="session")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launch = Launcher(tmp_path_factory.mktemp("service-logs"))
    yield launch
    launch.stop_all()


@pytest.fixture(scope="session")
def mesh(infra: Settings, launcher: Launcher) -> dict[str, ServiceProcess]:
    """Every service running against the session's infrastructure, all SERVING."""
    # The session's chat keeps a deep queue (50 stalled readers fit) and drops a stalled reader after 5 s.
    env = {"chat": {"TESSERA_CHAT_QUEUE_DEPTH": "64", "TESSERA_CHAT_STALL_TIMEOUT_S": "5"}}
    procs = {s: launcher.start(s, infra, **env.get(s, {})) for s in SERVICES}
    wait_serving(infra, list(procs.values()))
    return procs


@pytest.fixture(scope="session")
def restart_redis(infra: Settings) -> Callable[[], None]:
    """Stops nothing by itself; returns a function that brings the session's Valkey back."""
    def restart() -> None:
        for server in embedded_servers(infra):
            if server.name == "redis":
                server.start()

    return restart


HOME_NOTES = {
    "kettle.md": "---\ntitle: Kettle descaling\ntype: howto\ntags: [kitchen]\nproject: home\n---\n# Kettle descaling\n\n"
                 "To descale a kettle, fill it halfway with equal parts white vinegar and water, bring it to a boil "
                 "and let it stand for an hour. Rinse it twice with clean water.\n",
    "chain.md": "---\ntitle: Bike chain care\ntype: howto\ntags: [bike]\nproject: home\n---\n# Bike chain care\n\n"
                "Bicycle chains should be lubricated every 300 km with a dry lube in summer and a wet lube in winter.\n",
}

@pytest.fixture(scope="session")
async def home_notes(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chat-notes")
    for name, text in HOME_NOTES.items():
        (folder / name).write_text(text)
    async with mesh_channel(infra, infra.address("ingest")) as ch:
        stub = ingest_pb2_grpc.IngestServiceStub(ch)
        started = await stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder)), timeout=30)
        job = started
        async for job in stub.WatchJob(ingest_pb2.GetJobRequest(job_id=started.job_id), timeout=300):  # noqa: B007 — the last one counts
            pass
    assert job.done and job.counts.embedded == len(HOME_NOTES), job
    return folder


