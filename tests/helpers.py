"""Helpers for tests: settings on free ports, and service processes started
exactly as pm2 starts them (`python -m services.X`)."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.ingest.chunk import Chunk
from services.ingest.pipeline import NewDocument
from shared.ops.infra import free_port
from shared.runtime.channels import KeyedChannel, key_metadata
from shared.runtime.config import SERVICES, Settings, load_settings, settings_env
from shared.runtime.status import check_service

ROOT = Path(__file__).resolve().parent.parent
#: The session's admin key as a header (conftest's infra fixture fills it): every gateway route but the page and health needs it.
ADMIN: dict[str, str] = {}


def mesh_channel(settings: Settings, target: str, **options: Any) -> KeyedChannel:
    """A raw channel to a service of this mesh whose every call carries its key (every gRPC server checks one)."""
    return KeyedChannel(grpc.aio.insecure_channel(target, **options), key_metadata(settings))


def key_md(settings: Settings) -> tuple[tuple[str, str], ...]:
    return (key_metadata(settings),)


def admin_headers(settings: Settings) -> dict[str, str]:
    """``Authorization: Bearer <admin key>`` of this data directory (made at setup, read as the CLI reads it)."""
    from shared.runtime import secrets

    return {"Authorization": f"Bearer {secrets.ensure(settings, secrets.ADMIN_KEY)}"}


def service_ports() -> dict[str, str]:
    env = {f"TESSERA_{s.upper()}_PORT": str(free_port()) for s in SERVICES if s != "gateway"}
    env |= {f"TESSERA_{s.upper()}_METRICS_PORT": str(free_port()) for s in SERVICES if s != "gateway"}
    env["TESSERA_GATEWAY_GRPC_PORT"] = str(free_port())
    env["TESSERA_GATEWAY_PORT"] = str(free_port())
    env["TESSERA_GATEWAY_TLS_PORT"] = str(free_port())
    return env


EXTENSION = ROOT / "clients" / "browser"


def extension_origin() -> str:
    """The browser extension's origin in Chromium (its ID follows from the public key in its manifest)."""
    import base64
    import hashlib
    import json

    der = base64.b64decode(json.loads((EXTENSION / "manifest.json").read_text())["key"])
    return "chrome-extension://" + "".join(chr(ord("a") + int(c, 16)) for c in hashlib.sha256(der).hexdigest()[:32])


def make_settings(data_dir: Path, **extra: str) -> Settings:
    env = {
        "TESSERA_DATA_DIR": str(data_dir),
        "TESSERA_DATABASE_URL": f"postgresql://tessera@127.0.0.1:{free_port()}/tessera",
        "TESSERA_NATS_URL": f"nats://127.0.0.1:{free_port()}",
        "TESSERA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "TESSERA_LOG_LEVEL": "debug",
        "TESSERA_GRACE_S": "5",
        "TESSERA_INGEST_ROOTS": str(data_dir.parent),   # the session's temporary folders
        "TESSERA_INGEST_MAX_BYTES": "1000000",
        "TESSERA_EMBED_ACK_WAIT_S": "4",
        "TESSERA_EMBED_TURN_CHUNKS": "128",  # documents over 128 chunks take turns with the notes queued after them
        "TESSERA_CHAT_MODEL": "smollm2-135m",  # the test suite's model: small and fast
        # Enrichment only where the knowledge tests look for it: the rest of the suite's documents would keep the
        # small model busy in the background for minutes.
        "TESSERA_ENRICH": "enriched",
        "TESSERA_CLUSTER_ASSIGN_S": "1",
        "TESSERA_REVIEW_SCHEDULE": "off",
        # Every test calls from 127.0.0.1, and several send wrong keys on purpose: the lockout has its own test
        # (tests/security) on a gateway of its own.
        "TESSERA_GATEWAY_AUTH_FAILURES": "100000",
        # the browser extension's origin, as a person allows it (the web tests load the extension)
        "TESSERA_GATEWAY_ALLOWED_ORIGINS": extension_origin(),
        **service_ports(),
        **extra,
    }
    return load_settings(env)


def tessera(settings: Settings, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    """The command line, run as a user runs it, against ``settings``."""
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, env=child_env(settings),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


#: The session mesh's own settings per service; a test that restarts one of its services passes them again.
#: Chat keeps a deep queue (50 stalled readers fit) and drops a stalled reader after 5 s; ingest defers the enrichment
#: of folder imports over 5 files (test_knowledge's large import).
MESH_ENV: dict[str, dict[str, str]] = {"chat": {"TESSERA_CHAT_QUEUE_DEPTH": "64", "TESSERA_CHAT_STALL_TIMEOUT_S": "5"},
                                       "ingest": {"TESSERA_ENRICH_IMPORT_MAX": "5"}}


def child_env(settings: Settings, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(settings_env(settings))
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    env.update(overrides)
    return env


@dataclass
class ServiceProcess:
    service: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Launcher:
    """Starts service processes against given settings; stops them all at the end."""

    logs: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def start(self, service: str, settings: Settings, **env: str) -> ServiceProcess:
        log = self.logs / f"{service}-{len(self.started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", f"services.{service}"], cwd=ROOT, env=child_env(settings, **env),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sp = ServiceProcess(service, proc, log)
        self.started.append(sp)
        return sp

    def stop_all(self) -> None:
        for sp in self.started:
            sp.stop()


def wait_serving(settings: Settings, procs: list[ServiceProcess], timeout: float = 180.0) -> None:
    end = time.monotonic() + timeout
    pending = {p.service: p for p in procs}
    while pending and time.monotonic() < end:
        for name, sp in list(pending.items()):
            if sp.proc.poll() is not None:
                raise AssertionError(f"{name} exited with {sp.proc.returncode}:\n{sp.output()[-3000:]}")
            if asyncio.run(check_service(settings, name, timeout=1.0))["status"] == "SERVING":
                del pending[name]
        time.sleep(0.3)
    if pending:
        raise AssertionError(f"not SERVING after {timeout}s: {sorted(pending)}\n" +
                             "\n".join(p.output()[-1500:] for p in pending.values()))


def make_pdf(text: str, password: str | None = None) -> bytes:
    """A one-page PDF with a real text layer (optionally encrypted)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- stored documents for store tests ---------------------------------------------------------------------------------
def store_chunk(i: int, text: str) -> Chunk:
    return Chunk(ord=i, text=text, char_start=i * 100, char_end=i * 100 + len(text), line_start=i * 3 + 1, line_end=i * 3 + 2,
                 heading_path=("Guide", f"Part {i}"), tokens=len(text.split()))


def store_document(project: str, name: str, texts: list[str]) -> NewDocument:
    path = f"/stores/{project}/{name}.md"
    return NewDocument(uuid.uuid5(uuid.NAMESPACE_URL, path), project, path, name.title(), "note", ["t"], "text/markdown",
                       f"hash-{name}-{len(texts)}", [], None, f"/stores/{project}", 10, [store_chunk(i, t) for i, t in enumerate(texts)])


#: Words for filler text whose lines differ: a file of one line repeated makes hundreds of identical chunk vectors,
#: and an HNSW walk that enters such a cluster may not get out of it (it hid other notes from vector search).
_FILLER = [
    "cellar", "humidity", "reading", "minute", "barrel", "cask", "oak", "cork", "bottle", "label", "shelf",
    "rack", "vintage", "grape", "harvest", "press", "yeast", "sugar", "acid", "tannin", "aroma", "colour",
    "clarity", "sediment", "racking", "fining", "filter", "pump", "hose", "valve", "gauge", "probe", "thermometer",
    "draught", "window", "door", "brick", "stone", "mortar", "damp", "mould", "ventilation", "fan", "schedule",
    "log", "record", "note", "morning", "evening", "winter", "summer", "spring", "autumn", "north", "south",
    "east", "west", "upper", "lower", "left", "right", "first", "last",
]


def filler(word: str, size: int) -> bytes:
    """``size`` bytes of markdown naming ``word``, every line a different sentence (seeded by ``word``)."""
    import random

    rng = random.Random(word)
    out = [f"# Readings of the {word}\n\n"]
    total = len(out[0])
    while total < size:
        line = f"The {word} " + " ".join(rng.choice(_FILLER) for _ in range(rng.randint(6, 12))) + ".\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]
