"""Session fixtures: real PostgreSQL, NATS and Valkey on free ports, once per
session, and every service running against them as a real process."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from helpers import ADMIN, MESH_ENV, Launcher, ServiceProcess, admin_headers, make_settings, mesh_channel, wait_serving
from psycopg_pool import AsyncConnectionPool
from seeds import SEED

from shared.gen.tessera.v1 import ingest_pb2, ingest_pb2_grpc
from shared.ops.infra import embedded_servers, start_all, stop_all
from shared.runtime import db
from shared.runtime.config import SERVICES, Settings


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--order", default="file", choices=("file", "reverse", "random"),
                     help="the order tests run in: as written, reversed, or shuffled by TEST_SEED (modules, then the tests in each)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the modules, and the tests within each, in another order: no test may rely on one that ran before it.
    A module stays together, so its fixtures start once."""
    order = config.getoption("--order")
    if order == "file":
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    rng = random.Random(SEED)
    for group in groups:
        group.reverse() if order == "reverse" else rng.shuffle(group)
    groups.reverse() if order == "reverse" else rng.shuffle(groups)
    items[:] = [item for group in groups for item in group]


def pytest_report_header(config: pytest.Config) -> str:
    return f"random inputs: TEST_SEED={SEED}; order: {config.getoption('--order')}"


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


@pytest.fixture
async def pool(infra: Settings) -> AsyncIterator[AsyncConnectionPool]:
    """A connection pool on the session's PostgreSQL, as a service opens it (the runtime role)."""
    p = await db.open_pool(infra)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def project(pool: AsyncConnectionPool) -> AsyncIterator[str]:
    """A project of its own for a store test; its documents (chunks, vectors and links go with them) are deleted after,
    so no other test, in any order, meets what the store test wrote behind the services' backs (vectors of a model
    the mesh does not run, chunks no queue message asked for)."""
    name = f"st-{uuid.uuid4().hex[:8]}"
    yield name
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM documents WHERE project = %s", (name,))


@pytest.fixture(scope="session")
def launcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    launch = Launcher(tmp_path_factory.mktemp("service-logs"))
    yield launch
    launch.stop_all()


@pytest.fixture(scope="session")
def mesh(infra: Settings, launcher: Launcher) -> dict[str, ServiceProcess]:
    """Every service running against the session's infrastructure, all SERVING."""
    procs = {s: launcher.start(s, infra, **MESH_ENV.get(s, {})) for s in SERVICES}
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


