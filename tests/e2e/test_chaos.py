"""The CI form of `make chaos`: one fault of each kind against an isolated pm2 mesh under a mixed load.

SIGKILL of a service, a SIGTERM restart, restarts of PostgreSQL and NATS, a NATS outage and Redis down for the
rest of the run, while notes are captured, a folder is ingested, searches and streamed answers run and a tensor
job is checked bit for bit. Nothing acknowledged is lost or duplicated, every error is a documented status with
a sentence, no client waits more than 5 s, and every service is SERVING within 10 s of each fault.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(290)
def test_chaos_quick() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    result = subprocess.run([sys.executable, "bench/chaos.py", "--quick", "--docs", "60", "--nats-outage-s", "5", "--limit-s", "240",
                             "--seed", "20261201"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=280, stdin=subprocess.DEVNULL)
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[-1]) if lines[-1].startswith("{") else None
    assert report is not None, result.stdout[-3000:] + result.stderr[-3000:]
    kinds = {f["fault"].split(" ")[0] for f in report["table"]}
    assert {"SIGKILL", "SIGTERM", "postgres", "nats", "redis"} <= kinds, kinds
    assert report["acknowledged"] > 60 and report["tensor_jobs"], report
    assert report["lost"] == 0 and report["duplicates"] == 0, report
    assert report["bad_errors"] == 0, report["bad"]
    assert report["chunks_without_embedding"] == 0, report
    assert report["max_client_stall_s"] <= 5.0, report["stall_where"]
    assert report["max_recovery_s"] <= 10.0, report["table"]
    assert result.returncode == 0, result.stdout[-3000:]
