"""The `tessera` command line: run, stop and inspect the mesh.

    tessera up       start embedded infrastructure and every service, wait until SERVING
    tessera down     stop every service and the embedded infrastructure
    tessera status   health of each service and of PostgreSQL, NATS and Redis
    tessera config   every TESSERA_* setting with its default
    tessera ingest PATH / search "QUERY" / related DOC   the knowledge pipeline
    tessera map / review / stale / enrich   clusters, the weekly review, stale notes, enrichment
    tessera gpu status   devices, leases and the queue of the GPU scheduler
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.table import Table

from shared.cli import agents as cli_agents
from shared.cli import chat as cli_chat
from shared.cli import export as cli_export
from shared.cli import hooks as cli_hooks
from shared.cli import knowledge as cli_knowledge
from shared.cli import pipeline as cli_pipeline
from shared.cli import snapshot as cli_snapshot
from shared.cli import tensor as cli_tensor
from shared.cli import users as cli_users
from shared.client import Client
from shared.conversions import backlog_json
from shared.errors import ConfigError, DependencyError, InfraError, StatusError, TesseraError
from shared.gen.tessera.v1 import scheduler_pb2
from shared.ops import infra
from shared.ops.pm2 import Pm2
from shared.runtime import bus, db, secrets
from shared.runtime.certs import dev_certificate
from shared.runtime.config import SERVICES, Settings, describe, load_settings
from shared.runtime.logs import fmt_bytes
from shared.runtime.roots import ingest_roots
from shared.runtime.status import check_service, mesh_status, selftests, why_not_serving
from shared.tools import eval_beir, load, traces

MAX_INSTANCES = 64

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


def explain_down(settings: Settings, report: dict[str, Any]) -> None:
    """Add to each service that is not SERVING why, from pm2 (restarts) and its self-test markers."""
    down = [s for s in report["services"] if s["status"] != "SERVING"]
    if not down:
        return
    pm2 = Pm2(settings)
    apps = pm2.apps() if pm2.binary.exists() else []
    for svc in down:
        restarts = sum(int(a.get("restarts") or 0) for a in apps if a["name"] == svc["service"])
        why = why_not_serving(restarts, selftests(settings, svc["service"]))
        if why:
            svc["detail"] = f"{svc['detail']}; {why}" if svc.get("detail") else why


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(mesh_status(settings))
    explain_down(settings, report)
    if any(s["service"] == "ingest" and s["status"] == "SERVING" for s in report["services"]):
        report["backlog"] = asyncio.run(backlog(settings))
    if args.json:
        print(json.dumps(report))
    else:
        for table in _status_tables(report):
            console.print(table)
        if "backlog" in report:
            console.print(backlog_lines(report["backlog"]))
    return 0 if report["ok"] else 1


async def backlog(settings: Settings) -> dict[str, Any]:
    """Background work left, its pace over the last ten minutes and the ETA at that pace (ingest's library)."""
    try:
        async with Client(settings, timeout_s=5) as client:
            return backlog_json((await client.library()).backlog)
    except StatusError as exc:
        return {"error": f"ingest did not answer: {exc.message}"}


def backlog_lines(b: dict[str, Any]) -> str:
    """The background work as two lines: what waits, at what pace, done in about how long."""
    if "error" in b:
        return f"background work: {b['error']}"

    def eta(seconds: float, waiting: int) -> str:
        if not waiting:
            return "nothing waits"
        return f"about {fmt_duration(seconds)} at that pace" if seconds else "no pace yet"

    lines = [f"embedding: {b['chunks_waiting']} chunks wait, {b['chunks_per_minute']:.0f}/min lately, {eta(b['embed_eta_s'], b['chunks_waiting'])}",
             f"enrichment: {b['enrich_waiting']} documents wait, {b['enriched_per_minute']:.1f}/min lately, "
             f"{eta(b['enrich_eta_s'], b['enrich_waiting'])}"]
    if b["enrich_deferred"]:
        lines.append(f"  {b['enrich_deferred']} more of large imports wait until opened, cited or asked for (`tessera enrich`)")
    return "\n".join(lines)


def fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_scale(settings: Settings, args: argparse.Namespace) -> int:
    """pm2 scale: more gRPC instances share the port (SO_REUSEPORT); more workers share the NATS queues."""
    if args.service not in SERVICES:
        raise ConfigError("service", f"unknown service {args.service!r}; known: {', '.join(SERVICES)}")
    if not 1 <= args.instances <= MAX_INSTANCES:
        raise ConfigError("instances", f"{args.instances} is not between 1 and {MAX_INSTANCES}")
    pm2 = Pm2(settings)
    if not any(a["name"] == args.service for a in pm2.apps()):
        raise InfraError(f"scale: {args.service} is not running under this data directory ({settings.path()}); run `tessera up` first")
    pm2.scale(args.service, args.instances)
    end = time.monotonic() + args.timeout
    while True:  # every instance online in pm2 and registered with NATS, and the service SERVING
        online = [a for a in pm2.apps() if a["name"] == args.service and a["status"] == "online"]
        registered = len(asyncio.run(_discover(settings, args.service)))
        status = asyncio.run(check_service(settings, args.service, timeout=2.0))["status"]
        if len(online) == registered == args.instances and status == "SERVING":
            break
        if time.monotonic() > end:
            raise InfraError(f"scale: {args.service} has {len(online)}/{args.instances} instances online, {registered} registered, "
                             f"{status}, after {args.timeout:.0f}s; see {settings.path('logs')}")
        time.sleep(0.5)
    console.print(f"[green]✓[/] {args.service}: {len(online)} instances online, {registered} registered with NATS, SERVING")
    return 0


async def _discover(settings: Settings, service: str) -> list[dict[str, str]]:
    nc = await bus.probe(secrets.nats_url(settings))
    try:
        return await bus.discover(nc, service, wait=1.0)
    finally:
        await nc.close()


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    settings.path().mkdir(parents=True, exist_ok=True)
    for server in infra.start_all(settings):
        console.print(f"[green]✓[/] {server.name} on 127.0.0.1:{server.port}")
    if not settings.gateway.certfile:
        cert, key = dev_certificate(settings.path("certs"))
        settings = settings.with_overrides(gateway_certfile=str(cert), gateway_keyfile=str(key))
        console.print(f"[green]✓[/] development certificate {cert} (HTTPS and HTTP/3 on port {settings.gateway.tls_port})")
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
        why = f"{', '.join(report['exited'])} exited" if report.get("exited") else f"after {args.timeout:.0f}s"
        console.print(f"[red]the mesh is not SERVING: {why}[/]; logs: {settings.path('logs')}")
        return 1
    console.print(f"\n[bold]Tessera is up:[/] http://{settings.public_host()}:{settings.gateway.port}  "
                  f"(HTTPS and HTTP/3: https://{settings.public_host()}:{settings.gateway.tls_port}; API: /docs)")
    console.print(f"Open the page with this one-time link (valid {settings.gateway.login_ttl_s // 60} min; "
                  f"`tessera login` makes another):\n  {secrets.login_link(settings)}")
    console.print(f"API key: {secrets.folder(settings) / secrets.ADMIN_KEY} (0600; the CLI, `tessera mcp` and the SDK read it)")
    console.print(f"Ingest reads only {', '.join(ingest_roots(settings))}; add a folder with TESSERA_INGEST_ROOTS=~/notes")
    return 0


def cmd_login(settings: Settings, args: argparse.Namespace) -> int:
    print(secrets.login_link(settings))
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
                return {**report, "exited": [app["name"] for app in dead]}
            time.sleep(1.0)


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    Pm2(settings).stop_all()
    console.print("[green]✓[/] services stopped")
    infra.stop_all(settings)
    console.print("[green]✓[/] infrastructure stopped")
    return 0


def cmd_gpu_status(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(_gpu_status(settings))
    if args.json:
        print(json.dumps(MessageToDict(report, preserving_proto_field_name=True)))
        return 0
    console.print("mode: " + ("[yellow]CPU-only[/] (no GPU: every lease says cpu)" if report.cpu_only else "GPU"))
    devices = Table(title="devices", title_justify="left")
    for col in ("index", "name", "source", "total", "free", "granted", "utilization"):
        devices.add_column(col)
    for d in report.devices:
        devices.add_row(str(d.index), d.name, d.source, fmt_bytes(d.total_bytes), fmt_bytes(d.free_bytes), fmt_bytes(d.granted_bytes),
                        f"{d.utilization:.0%}")
    leases = Table(title="leases", title_justify="left")
    for col in ("lease", "service", "holder", "priority", "device", "bytes", "expires"):
        leases.add_column(col)
    for lease in report.leases:
        leases.add_row(lease.lease_id, lease.service, lease.holder_id, scheduler_pb2.Priority.Name(lease.priority), lease.device,
                       fmt_bytes(lease.bytes), lease.expires_at.ToDatetime().strftime("%H:%M:%S"))
    queue = Table(title="queue", title_justify="left")
    for col in ("service", "priority", "bytes", "waited", "effective priority"):
        queue.add_column(col)
    for w in report.queue:
        queue.add_row(w.service, scheduler_pb2.Priority.Name(w.priority), fmt_bytes(w.bytes), f"{w.waited_ms:.0f} ms",
                      f"{w.effective_priority:.0f}")
    for table in (devices, leases, queue):
        console.print(table)
    if report.decisions:
        console.print("recent decisions:\n  " + "\n  ".join(report.decisions[-10:]))
    return 0


async def _gpu_status(settings: Settings) -> scheduler_pb2.SchedulerStatus:
    async with Client(settings, timeout_s=5) as client:
        try:
            return await client.gpu_status()
        except StatusError as exc:
            raise DependencyError(f"gpu: the scheduler at {settings.address('scheduler')} did not answer ({exc.code})") from None


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
    sub.add_parser("login", help="print a one-time link that opens the web page signed in").set_defaults(fn=cmd_login)
    sub.add_parser("config", help="list every TESSERA_* setting").set_defaults(fn=cmd_config)
    p = sub.add_parser("scale", help="run N instances of one service (pm2); they share its port and its NATS queues")
    p.add_argument("service")
    p.add_argument("instances", type=int)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait until all are online and SERVING")
    p.set_defaults(fn=cmd_scale)
    cli_pipeline.add_commands(sub)
    cli_agents.add_commands(sub)
    cli_chat.add_commands(sub)
    cli_knowledge.add_commands(sub)
    cli_tensor.add_commands(sub)
    cli_snapshot.add_commands(sub)
    cli_export.add_commands(sub)
    cli_hooks.add_commands(sub)
    cli_users.add_commands(sub)
    load.add_commands(sub)
    eval_beir.add_commands(sub)
    traces.add_commands(sub)
    gpu = sub.add_parser("gpu", help="the GPU scheduler").add_subparsers(dest="gpu_command", required=True)
    p = gpu.add_parser("status", help="devices, leases, waiting requests and recent decisions")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(fn=cmd_gpu_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        return int(args.fn(settings, args))
    except ConfigError as exc:
        console.print(f"tessera: {exc}", style="red", highlight=False)
        return 2
    except StatusError as exc:
        console.print(f"tessera: {exc} ({exc.code})", style="red", highlight=False)
        return 1
    except TesseraError as exc:
        console.print(f"tessera: {exc}", style="red", highlight=False)
        return 1


if __name__ == "__main__":
    sys.exit(main())
