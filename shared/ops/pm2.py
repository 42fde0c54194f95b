"""pm2, the process manager of the one-host mesh, installed into node_modules.

PM2_HOME lives in the data directory, so the project's pm2 daemon never touches
a pm2 the user runs for other things.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from shared.errors import InfraError
from shared.runtime.config import PROJECT_ROOT, Settings, settings_env

ROOT = PROJECT_ROOT


class Pm2:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.binary = ROOT / "node_modules" / ".bin" / "pm2"
        self.home = settings.path("pm2")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update(settings_env(self.settings))
        env["TESSERA_DATA_DIR"] = str(self.settings.path())
        env["PM2_HOME"] = str(self.home)
        env["MESH_PYTHON"] = sys.executable
        return env

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        if not self.binary.exists():
            raise InfraError(f"pm2: {self.binary} is missing; run `make setup` (npm installs pm2 into the project)")
        self.home.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([str(self.binary), *args], cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise InfraError(f"pm2: `pm2 {' '.join(args)}` failed: {(result.stderr or result.stdout).strip()[-400:]}")
        return result

    def daemon_running(self) -> bool:
        pid_file = self.home / "pm2.pid"
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
        return True

    def apps(self) -> list[dict[str, Any]]:
        """[{"name", "status", "pid", "restarts", "instance"}] per process; [] when no daemon runs."""
        if not self.daemon_running():
            return []
        out = self.run("jlist").stdout
        start = out.find("[")
        procs = json.loads(out[start:]) if start >= 0 else []
        return [{"name": p["name"], "status": p["pm2_env"]["status"], "pid": p.get("pid"),
                 "restarts": p["pm2_env"].get("restart_time", 0), "instance": p["pm2_env"].get("NODE_APP_INSTANCE", 0),
                 "exit_code": p["pm2_env"].get("exit_code")}
                for p in procs]

    def start(self, names: list[str]) -> None:
        for name in names:
            self.run("start", str(ROOT / "pm2.config.js"), "--only", name)

    def scale(self, name: str, instances: int) -> None:
        self.run("scale", name, str(instances))

    def stop_all(self) -> None:
        if self.daemon_running():
            self.run("delete", "all", check=False, timeout=self.settings.rpc.grace_s * 2 + 60)
            self.run("kill", check=False, timeout=60)

    def log_tail(self, name: str, lines: int = 8) -> str:
        path = self.settings.path("logs", f"{name}.err.log")
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
