"""`tessera hooks add|list|rotate|remove`: the webhook sources the gateway accepts (shared/runtime/hooks.py)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from shared.runtime import hooks
from shared.runtime.config import Settings
from shared.tools.progress import console


def _base_url(settings: Settings) -> str:
    host = settings.public_host()
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.gateway.port}"


def _given_secret(args: argparse.Namespace) -> str | None:
    """A source's own secret (Slack's signing secret) from a file or standard input: never an argument, which another
    user could read in ps."""
    if not args.secret_from:
        return None
    if args.secret_from == "-":
        return sys.stdin.readline()
    with open(args.secret_from) as f:
        return f.readline()


def cmd_add(settings: Settings, args: argparse.Namespace) -> int:
    hook, path = hooks.add(settings, args.name, args.kind, args.project, args.tag, _given_secret(args))
    url = hook.public(_base_url(settings))["url"]
    console.print(f"[green]✓[/] hook {hook.name} ({hook.kind}) at {url}", highlight=False)
    console.print(("its secret is Slack's signing secret you gave, kept in " if args.secret_from else
                   "its secret (paste it into the source's webhook settings; it is not shown here) is in ") + str(path), highlight=False)
    return 0


def cmd_rotate(settings: Settings, args: argparse.Namespace) -> int:
    hook, path = hooks.rotate(settings, args.name, _given_secret(args))
    console.print(f"[green]✓[/] new secret for {hook.name} in {path}; the previous one still works for "
                  f"{hooks.ROTATE_GRACE_S // 60} minutes", highlight=False)
    return 0


def cmd_remove(settings: Settings, args: argparse.Namespace) -> int:
    hooks.remove(settings, args.name)
    console.print(f"[green]✓[/] hook {args.name} removed: its calls are refused from now on", highlight=False)
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    found = [h.public(_base_url(settings)) for h in hooks.load(settings).values()]
    if args.json:
        print(json.dumps(found))
        return 0
    table = Table(title_justify="left")
    for col in ("name", "kind", "project", "tags", "created", "rotated", "url"):
        table.add_column(col)
    for h in found:
        table.add_row(str(h["name"]), str(h["kind"]), str(h["project"]), ", ".join(h["tags"]),
                      str(h["created_at"])[:19], str(h["rotated_at"])[:19], str(h["url"]))
    console.print(table if found else "no hooks: `tessera hooks add NAME --kind generic|slack|github`")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("hooks", help="signed webhooks (generic JSON, Slack, GitHub) that capture notes").add_subparsers(
        dest="hooks_command", required=True)
    p = group.add_parser("add", help="a new webhook source; says where its secret is")
    p.add_argument("name")
    p.add_argument("--kind", choices=hooks.KINDS, required=True)
    p.add_argument("--project", default="", help="the project its notes go to")
    p.add_argument("--tag", action="append", default=[], help="a tag every note of it gets (repeatable)")
    p.add_argument("--secret-from", default="", help="the source's own secret (Slack's signing secret) from this file, or '-' "
                   "for standard input; default: a new random one")
    p.set_defaults(fn=cmd_add)
    p = group.add_parser("rotate", help="a new secret (the previous one works for an hour more)")
    p.add_argument("name")
    p.add_argument("--secret-from", default="", help="as for add")
    p.set_defaults(fn=cmd_rotate)
    p = group.add_parser("remove", help="refuse a source's calls from now on")
    p.add_argument("name")
    p.set_defaults(fn=cmd_remove)
    p = group.add_parser("list", help="the hooks, their URLs (never their secrets)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)
