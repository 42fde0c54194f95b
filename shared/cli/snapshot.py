"""`tessera snapshot create|list|verify|restore`: a consistent copy of the knowledge base, and its return."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from rich.table import Table

from shared.ops import restore, snapshot
from shared.ops.pm2 import Pm2
from shared.runtime.config import SERVICES, Settings
from shared.runtime.logs import fmt_bytes
from shared.tools.progress import console


def _folder(args: argparse.Namespace) -> Path | None:
    return Path(args.dir).expanduser() if args.dir else None


def _secret(settings: Settings, args: argparse.Namespace, path: Path | None = None) -> bytes | None:
    """--key-file, else TESSERA_SNAPSHOT_KEY_FILE; for an encrypted snapshot with neither, the passphrase typed at a
    terminal (never an argument: another user could read it in ps)."""
    secret = snapshot.configured_secret(settings, args.key_file)
    if secret is None and path is not None and snapshot.encrypted(path) and sys.stdin.isatty():
        secret = getpass.getpass(f"passphrase of {path.name}: ").encode()
    return secret


def cmd_create(settings: Settings, args: argparse.Namespace) -> int:
    secret = _secret(settings, args)
    path = snapshot.create(settings, _folder(args), secret)
    manifest = snapshot.verify(path, secret)
    size = sum(f["bytes"] for f in manifest["files"].values())
    console.print(f"[green]✓[/] snapshot of {manifest['counts']['documents']} documents, {manifest['counts']['chunks']} chunks "
                  f"and {manifest['counts']['conversations']} conversations ({fmt_bytes(size)}, schema {manifest['schema_version']}"
                  + (", encrypted" if secret else "") + ")")
    print(path)  # the last line: the snapshot's path, for `verify` and `restore`
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    found = snapshot.listed(settings, _folder(args))
    if args.json:
        print(json.dumps(found))
        return 0
    if not found:
        console.print(f"no snapshots in {(_folder(args) or snapshot.default_dir(settings))}")
        return 0
    table = Table(title_justify="left")
    for col in ("created", "documents", "chunks", "conversations", "size", "schema"):
        table.add_column(col)
    table.add_column("path", overflow="fold")
    for m in found:
        c = m.get("counts", {})
        table.add_row(m.get("created_at", "")[:19], str(c.get("documents", "?")), str(c.get("chunks", "?")), str(c.get("conversations", "?")),
                      fmt_bytes(sum(f.get("bytes", 0) for f in m.get("files", {}).values())), str(m.get("schema_version", "?")), m["path"])
    console.print(table)
    return 0


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser()
    manifest = snapshot.verify(path, _secret(settings, args, path))
    if not manifest["contents_checked"]:
        console.print(f"[yellow]![/] {manifest['name']}: every file matches its sha256, but it is encrypted and no passphrase "
                      "or key was given (--key-file, or TESSERA_SNAPSHOT_KEY_FILE), so its contents were not read")
        return 0
    console.print(f"[green]✓[/] {manifest['name']}: every file matches its sha256, the dump and the files read back "
                  f"({manifest['counts']['documents']} documents, schema {manifest['schema_version']}"
                  + (", encrypted" if manifest.get("encryption") else "") + ")")
    return 0


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.path).expanduser()
    secret = _secret(settings, args, path)
    if not snapshot.verify(path, secret)["contents_checked"]:  # before anything is stopped
        raise snapshot.SnapshotError(f"snapshot: {path} is encrypted: give its passphrase or key (--key-file, or "
                                     "TESSERA_SNAPSHOT_KEY_FILE)")
    pm2 = Pm2(settings)
    running = sorted({a["name"] for a in pm2.apps() if a["status"] == "online"} & set(SERVICES))
    if running:
        console.print(f"stopping {', '.join(running)} …")
        pm2.stop_all()
    result = restore.restore(settings, path, secret)
    c = result["counts"]
    console.print(f"[green]✓[/] restored {result['name']}: {c['documents']} documents, {c['chunks']} chunks, {c['conversations']} "
                  f"conversations" + (f"; migrations applied: {', '.join(result['migrations_applied'])}" if result["migrations_applied"] else "")
                  + (f"; {result['paths_moved']} paths moved to this data directory" if result["paths_moved"] else ""))
    if running and not args.no_restart:
        console.print(f"starting {', '.join(running)} …")
        pm2.start(running)
    return 0


KEY_HELP = ("a file (mode 0600) with the passphrase or key: the snapshot is encrypted with it, or read with it "
            "(default: TESSERA_SNAPSHOT_KEY_FILE; an encrypted snapshot without either asks at a terminal)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    snap = sub.add_parser("snapshot", help="snapshots of the knowledge base: create, list, verify, restore").add_subparsers(
        dest="snapshot_command", required=True)
    p = snap.add_parser("create", help="a consistent snapshot (database, notes, manifest); prints its path on the last line")
    p.add_argument("--dir", default="", help="where (default <data_dir>/snapshots; keep copies on another disk)")
    p.add_argument("--key-file", default="", help=KEY_HELP)
    p.set_defaults(fn=cmd_create)
    p = snap.add_parser("list", help="the complete snapshots, newest first")
    p.add_argument("--dir", default="", help="where to look (default <data_dir>/snapshots)")
    p.add_argument("--json", action="store_true", help="each snapshot's manifest and path, as JSON")
    p.set_defaults(fn=cmd_list)
    p = snap.add_parser("verify", help="check every file of a snapshot against its manifest")
    p.add_argument("path")
    p.add_argument("--key-file", default="", help=KEY_HELP)
    p.set_defaults(fn=cmd_verify)
    p = snap.add_parser("restore", help="replace the knowledge base with a snapshot (stops and restarts the services)")
    p.add_argument("path")
    p.add_argument("--no-restart", action="store_true", help="leave the services stopped afterwards")
    p.add_argument("--key-file", default="", help=KEY_HELP)
    p.set_defaults(fn=cmd_restore)
