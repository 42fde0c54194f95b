"""The `tessera` command line: run, stop and inspect the mesh.

    tessera up       start embedded infrastructure and every service, wait until SERVING
    tessera down     stop every service and the embedded infrastructure
    tessera status   health of each service and of PostgreSQL, NATS and Redis
    tessera config   every TESSERA_* setting with its default
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

from shared import db, infra
from shared.config import SERVICES, Settings, describe, load_settings
from shared.errors import ConfigError, TesseraError
from shared.pm2 import Pm2
from shared.status import mesh_status

console = Console(width=None if sys.stdout.isatty() else 160)


def _status_tables(report: dict[str, Any]) -> list[Table]:
    services = Table(title="services", title_justify="left")
    for col in ("service", "status", "address", "instances", "uptime", "dependencies", "detail"):
        services.add_column(col)
    for s in report["services"]:
        colour = "green" if s["status"] == "SERVING" else "red"
        deps = s.get("dependencies") or {}
        bad = ", ".join(f"{k}: {v}" for k, v in deps.items() if v != "ok")
        deps = bad or ("ok" if deps else "-")
        uptime = f"{s['uptime_s']:.0f}s" if "uptime_s" in s else "-"
        services.add_row(s["service"], f"[{colour}]{s['status']}[/]", s["address"], str(s.get("instances") or "-"), uptime,
                         deps, s.get("detail", ""))
    infra_table = Table(title="infrastructure", title_justify="left")
    for col in ("name", "status", "url", "detail"):
        infra_table.add_column(col)
    for i in report["infra"]:
        colour = "green" if i["status"] == "UP" else ("red" if i["required"] else "yellow")
        infra_table.add_row(i["name"], f"[{colour}]{i['status']}[/]", i["url"], i["detail"])
    return [services, infra_table]


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(mesh_status(settings))
    if args.json:
        print(json.dumps(report))
    else:
        for table in _status_tables(report):
            console.print(table)
    return 0 if report["ok"] else 1


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    settings.path().mkdir(parents=True, exist_ok=True)
    for server in infra.start_all(settings):
        console.print(f"[green]✓[/] {server.name} on 127.0.0.1:{server.port}")
    applied = asyncio.run(db.migrate(settings))
    if applied:
        console.print(f"[green]✓[/] migrations applied: {', '.join(applied)}")
    pm2 = Pm2(settings)
    online = {a["name"] for a in pm2.apps() if a["status"] == "online"}
    missing = [s for s in SERVICES if s not in online]
    if missing:
        console.print(f"starting {', '.join(missing)} under pm2 …")
        pm2.start(missing)
    else:
        console.print("every service is already running")
    report = _wait_serving(settings, pm2, args.timeout)
    for table in _status_tables(report):
        console.print(table)
    if not report["ok"]:
        console.print(f"[red]the mesh is not SERVING after {args.timeout:.0f}s[/]; logs: {settings.path('logs')}")
        return 1
    console.print(f"\n[bold]Tessera is up:[/] http://{settings.public_host()}:{settings.gateway_port}")
    return 0


def _wait_serving(settings: Settings, pm2: Pm2, timeout: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    with console.status("waiting for every service to report SERVING …"):
        while True:
            report = asyncio.run(mesh_status(settings))
            if report["ok"] or time.monotonic() > end:
                return report
            dead = [a for a in pm2.apps() if a["status"] in ("errored", "stopped")]
            if dead:
                for app in dead:
                    console.print(f"[red]{app['name']} exited[/] (code {app['exit_code']}):\n{pm2.log_tail(app['name'])}")
                return report
            time.sleep(1.0)


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    Pm2(settings).stop_all()
    console.print("[green]✓[/] services stopped")
    infra.stop_all(settings)
    console.print("[green]✓[/] infrastructure stopped")
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    table = Table()
    for col in ("variable", "default", "meaning"):
        table.add_column(col)
    for row in describe():
        table.add_row(*row)
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tessera", description="Tessera: your notes, searchable and answerable.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("status", help="health of every service and of PostgreSQL, NATS, Redis")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(fn=cmd_status)
    p = sub.add_parser("up", help="start the whole mesh and wait until it is SERVING")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for SERVING (default 300)")
    p.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop every service and the embedded infrastructure").set_defaults(fn=cmd_down)
    sub.add_parser("config", help="list every TESSERA_* setting").set_defaults(fn=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return int(args.fn(settings, args))
    except ConfigError as exc:
        console.print(f"tessera: {exc}", style="red", highlight=False)
        return 2
    except TesseraError as exc:
        console.print(f"tessera: {exc}", style="red", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
