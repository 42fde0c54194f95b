"""Writes deploy/k8s/tessera.yaml: Kubernetes manifests for the mesh (run after changing a service's shape).

    python deploy/k8s/generate.py          # rewrite tessera.yaml
    python deploy/k8s/generate.py --check  # exit 1 when tessera.yaml is stale (a test runs this)

Per service: a Deployment (grpc readiness/liveness probes on grpc.health.v1), a Service
and a HorizontalPodAutoscaler. NATS runs as a 3-node cluster with JetStream
(StatefulSet); Valkey (Redis protocol) as a cache; PostgreSQL with pgvector is
external — its URL comes from the Secret ``tessera-postgres``. Sizes are the
starting points explained in deploy/README.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent / "tessera.yaml"
NAMESPACE = "tessera"
IMAGE = "ghcr.io/tessera/tessera:0.1.0"
LABEL = "app.kubernetes.io/name"

# service: (gRPC port, extra ports, requests, limits, min/max replicas, target CPU %)
SERVICES: dict[str, dict[str, Any]] = {
    "gateway": {"port": 8477, "cpu": "250m", "memory": "256Mi", "cpu_limit": "1", "memory_limit": "512Mi", "replicas": (2, 6), "target": 70,
                "extra": [("http", 8470, "TCP"), ("https", 8480, "TCP"), ("http3", 8480, "UDP")]},
    "ingest": {"port": 8471, "cpu": "250m", "memory": "512Mi", "cpu_limit": "1", "memory_limit": "1Gi", "replicas": (1, 4), "target": 75},
    "embed": {"port": 8472, "cpu": "1", "memory": "1Gi", "cpu_limit": "2", "memory_limit": "2Gi", "replicas": (1, 8), "target": 70},
    "search": {"port": 8473, "cpu": "500m", "memory": "512Mi", "cpu_limit": "1", "memory_limit": "1Gi", "replicas": (2, 8), "target": 70},
    "chat": {"port": 8474, "cpu": "2", "memory": "2Gi", "cpu_limit": "4", "memory_limit": "4Gi", "replicas": (1, 4), "target": 80,
             "extra": [("quic", 8574, "UDP")], "env": {"TESSERA_CHAT_QUIC_PORT": "8574"}},
    "tensor": {"port": 8475, "cpu": "1", "memory": "1Gi", "cpu_limit": "2", "memory_limit": "2Gi", "replicas": (1, 8), "target": 75,
               "extra": [("quic", 8575, "UDP")], "env": {"TESSERA_TENSOR_QUIC_PORT": "8575"}},
    "scheduler": {"port": 8476, "cpu": "100m", "memory": "128Mi", "cpu_limit": "500m", "memory_limit": "256Mi", "replicas": (1, 1), "target": 80},
}
PORT_SETTING = {s: ("TESSERA_GATEWAY_GRPC_PORT" if s == "gateway" else f"TESSERA_{s.upper()}_PORT") for s in SERVICES}


def meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": {LABEL: component, "app.kubernetes.io/part-of": "tessera"}}


def config() -> list[dict[str, Any]]:
    data = {"TESSERA_HOST": "0.0.0.0", "TESSERA_DISCOVERY": "nats", "TESSERA_EMBEDDED": "", "TESSERA_LOG_FORMAT": "json",
            "TESSERA_NATS_URL": "nats://nats:4222", "TESSERA_REDIS_URL": "redis://valkey:6379/0", "TESSERA_DATA_DIR": "/var/lib/tessera",
            "TESSERA_QUIC_CERTFILE": "/etc/tessera/tls/tls.crt", "TESSERA_QUIC_KEYFILE": "/etc/tessera/tls/tls.key",
            "TESSERA_QUIC_CAFILE": "/etc/tessera/tls/ca.crt", "TESSERA_GATEWAY_CERTFILE": "/etc/tessera/tls/tls.crt",
            "TESSERA_GATEWAY_KEYFILE": "/etc/tessera/tls/tls.key"}
    data |= {PORT_SETTING[s]: str(c["port"]) for s, c in SERVICES.items()}
    data |= {f"TESSERA_{s.upper()}_METRICS_PORT": str(metrics_port(s, c)) for s, c in SERVICES.items() if s != "gateway"}
    data |= {f"TESSERA_{s.upper()}_ADDR": f"{s}:{c['port']}" for s, c in SERVICES.items() if s != "gateway"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": "tessera"}}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("tessera-config", "tessera"), "data": data},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("tessera-postgres", "postgres"), "type": "Opaque",
         "stringData": {"TESSERA_DATABASE_URL": "postgresql://tessera:CHANGE-ME@postgres.example.internal:5432/tessera?sslmode=require"}},
        # The key every service's gRPC port checks (pods share no data directory, so no admin key file): services refuse
        # to start with this placeholder; replace it with `openssl rand -base64 32`.
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("tessera-keys", "tessera"), "type": "Opaque",
         "stringData": {"TESSERA_RPC_KEYS": "CHANGE-ME-to-a-long-random-key"}},
    ]


def metrics_port(name: str, c: dict[str, Any]) -> int:
    """Where Prometheus scrapes a pod: the gateway's HTTP port, another service's metrics port (gRPC port + 1000)."""
    return 8470 if name == "gateway" else c["port"] + 1000


def service_objects(name: str, c: dict[str, Any]) -> list[dict[str, Any]]:
    ports = [{"name": "grpc", "containerPort": c["port"], "protocol": "TCP"}]
    ports += [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in c.get("extra", [])]
    if name != "gateway":
        ports.append({"name": "metrics", "containerPort": metrics_port(name, c), "protocol": "TCP"})
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    env += [{"name": k, "value": v} for k, v in c.get("env", {}).items()]
    probe = {"grpc": {"port": c["port"]}, "periodSeconds": 10, "timeoutSeconds": 3}
    container = {
        # QUIC tickets carry the advertised host; the pod's DNS name matches the wildcard certificate in tessera-quic-tls.
        "name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", f'export TESSERA_ADVERTISE_HOST="$(echo "$POD_IP" | tr . -).{NAMESPACE}.pod.cluster.local"; '
                                f"exec python -m services.{name}"],
        "ports": ports, "env": env,
        "envFrom": [{"configMapRef": {"name": "tessera-config"}}, {"secretRef": {"name": "tessera-postgres"}},
                    {"secretRef": {"name": "tessera-keys"}}],
        "resources": {"requests": {"cpu": c["cpu"], "memory": c["memory"]}, "limits": {"cpu": c["cpu_limit"], "memory": c["memory_limit"]}},
        "startupProbe": {**probe, "failureThreshold": 60},  # models load before SERVING
        "readinessProbe": probe, "livenessProbe": {**probe, "failureThreshold": 6},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/tessera"}, {"name": "tls", "mountPath": "/etc/tessera/tls", "readOnly": True}],
    }
    low, high = c["replicas"]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, name),
        "spec": {"replicas": low, "selector": {"matchLabels": {LABEL: name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                 "template": {"metadata": {"labels": {LABEL: name, "app.kubernetes.io/part-of": "tessera"},
                                           # Prometheus' kubernetes_sd (deploy/prometheus.yml) keeps pods with these annotations
                                           "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": str(metrics_port(name, c)),
                                                           "prometheus.io/path": "/metrics"}},
                              "spec": {"terminationGracePeriodSeconds": 20, "containers": [container],
                                       "volumes": [{"name": "data", "emptyDir": {}},
                                                   {"name": "tls", "secret": {"secretName": "tessera-quic-tls"}}]}}},
    }
    service_ports = [{"name": p["name"], "port": p["containerPort"], "targetPort": p["containerPort"], "protocol": p["protocol"]} for p in ports]
    service = {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, name),
               "spec": {"type": "LoadBalancer" if name == "gateway" else "ClusterIP", "selector": {LABEL: name}, "ports": service_ports}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta(name, name),
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}, "minReplicas": low, "maxReplicas": high,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                          "averageUtilization": c["target"]}}}]}}
    return [deployment, service, hpa]


NATS_CONF = """port: 4222
http_port: 8222
server_name: $POD_NAME
max_payload: 8MB
jetstream {
  store_dir: /data/jetstream
  max_memory_store: 256MB
  max_file_store: 10GB
}
cluster {
  name: tessera
  port: 6222
  routes: [
    nats://nats-0.nats-cluster.tessera.svc.cluster.local:6222
    nats://nats-1.nats-cluster.tessera.svc.cluster.local:6222
    nats://nats-2.nats-cluster.tessera.svc.cluster.local:6222
  ]
}
"""


def nats() -> list[dict[str, Any]]:
    labels = {LABEL: "nats"}
    container = {
        "name": "nats", "image": "nats:2.11-alpine", "args": ["--config", "/etc/nats/nats.conf"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "client", "containerPort": 4222}, {"name": "cluster", "containerPort": 6222}, {"name": "monitor", "containerPort": 8222}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "readinessProbe": {"httpGet": {"path": "/healthz?js-enabled-only=true", "port": 8222}, "periodSeconds": 10},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/nats"}, {"name": "jetstream", "mountPath": "/data"}],
    }
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("nats-config", "nats"), "data": {"nats.conf": NATS_CONF}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("nats-cluster", "nats"),
         "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "cluster", "port": 6222}, {"name": "client", "port": 4222}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("nats", "nats"),
         "spec": {"selector": labels, "ports": [{"name": "client", "port": 4222, "targetPort": 4222}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("nats", "nats"),
         "spec": {"serviceName": "nats-cluster", "replicas": 3, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [container], "volumes": [{"name": "config", "configMap": {"name": "nats-config"}}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "jetstream"},
                                            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": meta("nats", "nats"),
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
    ]


def valkey() -> list[dict[str, Any]]:
    labels = {LABEL: "valkey"}
    container = {"name": "valkey", "image": "valkey/valkey:9.1-alpine",
                 "args": ["--save", "", "--appendonly", "no", "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru"],
                 "ports": [{"name": "redis", "containerPort": 6379}],
                 "resources": {"requests": {"cpu": "100m", "memory": "600Mi"}, "limits": {"cpu": "1", "memory": "700Mi"}},
                 "readinessProbe": {"tcpSocket": {"port": 6379}, "periodSeconds": 10}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("valkey", "valkey"),
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("valkey", "valkey"),
         "spec": {"selector": labels, "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}]}},
    ]


def documents() -> list[dict[str, Any]]:
    docs = config() + nats() + valkey()
    for name, c in SERVICES.items():
        docs += service_objects(name, c)
    return docs


def render() -> str:
    head = "# Generated by deploy/k8s/generate.py; edit that file, then run it.\n"
    return head + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=200) for d in documents())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python deploy/k8s/generate.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(documents())} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
