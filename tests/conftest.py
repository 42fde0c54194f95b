"""Session fixtures: real PostgreSQL, NATS and Valkey on free ports, once per
session, and every service running against them as a real process."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from helpers import Launcher, ServiceProcess, make_settings, wait_serving

from shared.config import SERVICES, Settings
from shared.infra import embedded_servers, start_all, stop_all


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Real PostgreSQL + pgvector, NATS + JetStream and Valkey, once per session."""
    settings = make_settings(tmp_path_factory.mktemp("tessera"))
    start_all(settings)
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
                with contextlib.suppress(Exception):
                    server.start()

    return restart
