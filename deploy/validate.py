"""Checks the deployment files without a cluster: Kubernetes objects against the API's schema, and the wiring.

    python deploy/validate.py deploy/k8s/tessera.yaml deploy/compose.yaml

Kubernetes: every object is walked against the OpenAPI model classes of the official
``kubernetes`` client (the same schema kubectl validates against): unknown fields,
wrong types and missing required fields are errors. Then the wiring: selectors
match pod labels, every HPA targets a Deployment, every Service selects pods, every
ConfigMap/Secret a pod uses exists, and the TESSERA_* settings they carry load.
Compose: services, images/builds, depends_on, ports, and the same settings check.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml

MODELS = {
    ("v1", "Namespace"): "V1Namespace", ("v1", "ConfigMap"): "V1ConfigMap", ("v1", "Secret"): "V1Secret", ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment", ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler", ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}
PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object, "datetime": str, "date": str}


def _check(value: Any, kind: str, where: str, errors: list[str]) -> None:
    from kubernetes import client

    if kind in PRIMITIVES:
        if (kind == "int" and isinstance(value, bool)) or not isinstance(value, PRIMITIVES[kind]):
            errors.append(f"{where}: expected {kind}, got {type(value).__name__}")
        return
    if kind.startswith(("list[", "List[")):
        if not isinstance(value, list):
            errors.append(f"{where}: expected a list")
            return
        for i, item in enumerate(value):
            _check(item, kind[5:-1], f"{where}[{i}]", errors)
        return
    if kind.startswith(("dict(", "Dict[")):
        inner = kind[kind.index(",") + 1:-1].strip()
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping")
            return
        for k, v in value.items():
            _check(v, inner, f"{where}.{k}", errors)
        return
    model = getattr(client, kind)
    if not isinstance(value, dict):
        errors.append(f"{where}: expected a {kind} mapping")
        return
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{where}: unknown field {key!r} for {kind}")
            continue
        _check(item, model.openapi_types[attr], f"{where}.{key}", errors)
        kwargs[attr] = item
    try:  # the generated constructors enforce required fields (and a few enums)
        model(**kwargs)
    except ValueError as exc:
        errors.append(f"{where}: {exc}")


def validate_kubernetes(docs: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    for i, doc in enumerate(docs):
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        model = MODELS.get(key)  # type: ignore[arg-type]
        if model is None:
            errors.append(f"object {i} ({name}): no schema here for apiVersion {key[0]!r} kind {key[1]!r}")
            continue
        _check(doc, model, name, errors)
    if not errors:
        errors += _wiring(docs)
    return errors


def _wiring(docs: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = {**by_kind.get("Deployment", {}), **by_kind.get("StatefulSet", {})}
    pod_labels = []
    for name, w in workloads.items():
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        pod_labels.append(labels)
        if any(labels.get(k) != v for k, v in w["spec"]["selector"]["matchLabels"].items()):
            errors.append(f"{w['kind']}/{name}: selector does not match its pod labels")
        pod = w["spec"]["template"]["spec"]
        for c in pod["containers"]:
            for src in c.get("envFrom", []):
                for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if ref in src and src[ref]["name"] not in by_kind.get(kind, {}):
                        errors.append(f"{w['kind']}/{name}: uses {kind} {src[ref]['name']!r}, which is not defined")
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            volumes = {v["name"] for v in pod.get("volumes", [])} | {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
            errors += [f"{w['kind']}/{name}: mounts volume {m!r}, which is not defined" for m in sorted(mounts - volumes)]
            for v in pod.get("volumes", []):
                if "configMap" in v and v["configMap"]["name"] not in by_kind.get("ConfigMap", {}):
                    errors.append(f"{w['kind']}/{name}: volume {v['name']!r} uses ConfigMap {v['configMap']['name']!r}, which is not defined")
    for name, svc in by_kind.get("Service", {}).items():
        selector = svc["spec"].get("selector", {})
        if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_labels):
            errors.append(f"Service/{name}: selects no pods")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = hpa["spec"]["scaleTargetRef"]
        if ref["name"] not in by_kind.get(ref["kind"], {}):
            errors.append(f"HorizontalPodAutoscaler/{name}: targets {ref['kind']}/{ref['name']}, which is not defined")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            errors.append(f"HorizontalPodAutoscaler/{name}: minReplicas is above maxReplicas")
    env: dict[str, str] = {}
    for cm in by_kind.get("ConfigMap", {}).values():
        env |= {k: v for k, v in (cm.get("data") or {}).items() if k.startswith("TESSERA_")}
    for secret in by_kind.get("Secret", {}).values():
        env |= {k: v for k, v in (secret.get("stringData") or {}).items() if k.startswith("TESSERA_")}
    errors += check_settings(env, "the ConfigMap and Secret")
    return errors


def check_settings(env: dict[str, str], where: str) -> list[str]:
    from shared.errors import ConfigError
    from shared.runtime.config import load_settings

    try:
        load_settings({k: str(v) for k, v in env.items()})
    except ConfigError as exc:
        return [f"{where}: {exc}"]
    return []


def validate_compose(doc: dict[str, Any]) -> list[str]:
    errors: list[str] = []
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        return ["compose: no services"]
    published: dict[str, str] = {}
    for name, svc in services.items():
        if not isinstance(svc, dict) or not ("image" in svc or "build" in svc):
            errors.append(f"compose: service {name!r} has neither image nor build")
            continue
        deps = svc.get("depends_on", {})
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                errors.append(f"compose: {name} depends on {dep!r}, which is not a service")
        for port in svc.get("ports", []):
            host = str(port).rsplit(":", 1)[0] if ":" in str(port) else str(port)
            host = re.sub(r"/(tcp|udp)$", "", host) + ("/udp" if str(port).endswith("/udp") else "")
            if host in published:
                errors.append(f"compose: {name} and {published[host]} both publish {host}")
            published[host] = name
        env = svc.get("environment", {})
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        common = doc.get("x-tessera-env", {})
        tessera = {k: v for k, v in {**common, **env}.items() if k.startswith("TESSERA_")}
        if tessera:
            errors += check_settings(tessera, f"compose service {name}")
    return errors


def validate_file(path: Path) -> list[str]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if path.name.startswith("compose"):
        return validate_compose(docs[0])
    return validate_kubernetes(docs)


def main(paths: list[str]) -> int:
    failed = 0
    for p in paths:
        errors = validate_file(Path(p))
        for e in errors:
            print(f"{p}: {e}", file=sys.stderr)
        print(f"{p}: {'ok' if not errors else f'{len(errors)} problem(s)'}")
        failed += bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:] or ["deploy/k8s/tessera.yaml", "deploy/compose.yaml"]))
