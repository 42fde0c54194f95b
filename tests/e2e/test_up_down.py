"""`tessera up` / `status` / `down` under pm2, exactly as `make run` and `make stop` use them."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ROOT, make_settings, tessera

from shared.ops.infra import embedded_servers, pid_alive
from shared.ops.pm2 import Pm2
from shared.runtime import secrets
from shared.runtime.config import SERVICES

pytestmark = [pytest.mark.e2e, pytest.mark.tier2]  # CI runs it in its second tier (make test-tier2): a pm2 mesh up, again and down


def test_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", TESSERA_LOG_LEVEL="info")
    pm2 = Pm2(settings)
    try:
        up = tessera(settings, "up", "--timeout", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"Tessera is up: http://127.0.0.1:{settings.gateway_port}" in up.stdout
        # A one-time login link for the page, where the admin key is, how to add a root; no secret itself.
        assert f"http://127.0.0.1:{settings.gateway_port}/login?token=" in up.stdout and "TESSERA_INGEST_ROOTS" in up.stdout
        for secret in secrets.folder(settings).iterdir():
            if secret.is_file():
                assert secret.read_text().strip() not in up.stdout + up.stderr, secret.name
        apps = pm2.apps()
        assert sorted(a["name"] for a in apps) == sorted(SERVICES) and all(a["status"] == "online" for a in apps)

        again = tessera(settings, "up", "--timeout", "120")
        assert again.returncode == 0 and "already running" in again.stdout, again.stdout + again.stderr
        assert {a["pid"] for a in pm2.apps()} == {a["pid"] for a in apps}, "a second `up` must not restart anything"

        status = tessera(settings, "status")
        assert status.returncode == 0 and status.stdout.count("SERVING") == len(SERVICES), status.stdout

        # per-service scaling: a second search instance shares the port and registers with NATS
        scaled = tessera(settings, "scale", "search", "2", "--timeout", "120")
        assert scaled.returncode == 0 and "search: 2 instances online, 2 registered with NATS, SERVING" in scaled.stdout, \
            scaled.stdout + scaled.stderr
        assert sum(a["name"] == "search" and a["status"] == "online" for a in pm2.apps()) == 2
        load = tessera(settings, "load", "--proto", str(ROOT / "protos/tessera/v1/search.proto"), "--call", "tessera.v1.SearchService/Search",
                       "-d", '{"query": "anything"}', "-c", "8", "-n", "80", "--connections", "4", "-O", "json", settings.address("search"))
        assert load.returncode == 0 and '"OK": 80' in load.stdout, load.stdout + load.stderr
        back = tessera(settings, "scale", "search", "1", "--timeout", "120")
        assert back.returncode == 0 and "search: 1 instances online" in back.stdout, back.stdout + back.stderr
        refused = tessera(settings, "scale", "searhc", "2")
        assert refused.returncode == 2 and "unknown service 'searhc'" in refused.stdout
        apps = pm2.apps()

        pids = [a["pid"] for a in apps] + [s.pid() for s in embedded_servers(settings)]
        daemon = int((settings.path("pm2") / "pm2.pid").read_text())
    finally:
        down = tessera(settings, "down", timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    alive = [pid for pid in [*pids, daemon] if pid and pid_alive(pid)]
    assert alive == [], f"processes left behind: {alive}"
    assert tessera(settings, "status").returncode == 1, "status must fail when the mesh is down"
