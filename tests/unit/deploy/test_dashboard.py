"""The Grafana dashboard and the Prometheus config ask only for metrics the services export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import grpc
import yaml
from prometheus_client import Counter, Gauge, Histogram

from shared.runtime import metrics
from shared.runtime.rpc import MethodStats

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def exported() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, Counter):
            names.add(value._name + "_total")
        elif isinstance(value, Histogram):
            names |= {value._name + suffix for suffix in ("_bucket", "_sum", "_count")}
        elif isinstance(value, Gauge):
            names.add(value._name)
    stats = MethodStats((1.0,))
    stats.record(grpc.StatusCode.OK, 0.5)
    rpc = metrics.RpcCollector({"/x.Y/Z": stats})
    for family in rpc.collect():
        names |= {s.name for s in family.samples} | {family.name}
    return names


def test_every_dashboard_query_names_an_exported_metric() -> None:
    board = json.loads((DEPLOY / "grafana" / "tessera.json").read_text())
    known = exported() | {"process_resident_memory_bytes"}
    used = {name for panel in board["panels"] for t in panel["targets"] for name in re.findall(r"\b(?:tessera|process)_[a-z_]+", t["expr"])}
    assert used and not used - known, used - known


def test_prometheus_config_scrapes_every_service() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    local = [job for job in config["scrape_configs"] if job["job_name"] in ("tessera-local", "tessera-gateway")]
    services = {target["labels"]["service"] for job in local for target in job["static_configs"]}
    gateway = next(job for job in local if job["job_name"] == "tessera-gateway")
    assert gateway["authorization"]["credentials_file"].endswith("secrets/admin-key")  # the gateway's /metrics needs the key
    assert services == {"gateway", "ingest", "embed", "search", "chat", "tensor", "scheduler"}
