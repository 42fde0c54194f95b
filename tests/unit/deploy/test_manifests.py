"""deploy/: the Kubernetes manifests and the compose file pass the schema and wiring checks, and the checks catch mistakes."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "deploy"))
from validate import validate_compose, validate_file, validate_kubernetes  # noqa: E402

K8S = ROOT / "deploy" / "k8s" / "tessera.yaml"
COMPOSE = ROOT / "deploy" / "compose.yaml"
SERVICES = ["gateway", "ingest", "embed", "search", "chat", "tensor", "scheduler"]


def docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(K8S.read_text()) if d]


def test_manifests_are_generated_from_the_generator() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "deploy" / "k8s" / "generate.py"), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_manifests_and_compose_validate() -> None:
    assert validate_file(K8S) == []
    assert validate_file(COMPOSE) == []


def test_every_service_has_a_deployment_a_service_and_an_autoscaler() -> None:
    kinds: dict[str, set[str]] = {}
    for d in docs():
        kinds.setdefault(d["kind"], set()).add(d["metadata"]["name"])
    for s in SERVICES:
        assert s in kinds["Deployment"] and s in kinds["Service"] and s in kinds["HorizontalPodAutoscaler"], s
    assert kinds["StatefulSet"] == {"nats"} and "valkey" in kinds["Deployment"] and "tessera-postgres" in kinds["Secret"]
    nats = next(d for d in docs() if d["kind"] == "StatefulSet")
    assert nats["spec"]["replicas"] == 3
    conf = next(d for d in docs() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "nats-config")["data"]["nats.conf"]
    assert "jetstream" in conf and "cluster" in conf and conf.count("nats://nats-") == 3


def mutate(path: list[Any], value: Any, kind: str = "Deployment", name: str = "search") -> list[str]:
    changed = copy.deepcopy(docs())
    target = next(d for d in changed if d["kind"] == kind and d["metadata"]["name"] == name)
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return validate_kubernetes(changed)


@pytest.mark.parametrize(("path", "value", "kind", "words"), [
    (["spec", "replicaz"], 2, "Deployment", "unknown field 'replicaz'"),
    (["spec", "replicas"], "2", "Deployment", "expected int"),
    (["spec", "template", "spec", "containers", 0, "name"], KeyError, "Deployment", "Field required"),
    (["spec", "selector", "matchLabels"], {"app.kubernetes.io/name": "other"}, "Deployment", "selector does not match"),
    (["spec", "scaleTargetRef", "name"], "serch", "HorizontalPodAutoscaler", "targets Deployment/serch"),
    (["spec", "selector"], {"app.kubernetes.io/name": "nobody"}, "Service", "selects no pods"),
    (["data", "TESSERA_SEARCH_PORT"], "not-a-port", "ConfigMap", "TESSERA_SEARCH_PORT"),
    (["data", "TESSERA_SERCH_PORT"], "8473", "ConfigMap", "TESSERA_SERCH_PORT"),
])
def test_the_checks_catch_mistakes(path: list[Any], value: Any, kind: str, words: str) -> None:
    name = "tessera-config" if kind == "ConfigMap" else "search"
    errors = mutate(path, value, kind, name)
    assert any(words in e for e in errors), errors


def test_compose_checks_catch_mistakes() -> None:
    doc = yaml.safe_load(COMPOSE.read_text())
    doc["services"]["search"]["depends_on"] = {"postgress": {"condition": "service_healthy"}}
    doc["services"]["ingest"]["ports"] = ["8470:8470"]
    doc["services"]["embed"]["environment"]["TESSERA_EMBED_DEVICE"] = "tpu"
    errors = validate_compose(doc)
    assert any("depends on 'postgress'" in e for e in errors)
    assert any("both publish 8470" in e for e in errors)
    assert any("TESSERA_EMBED_DEVICE" in e for e in errors)
