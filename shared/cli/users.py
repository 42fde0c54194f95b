"""`tessera users add|list|disable|enable`, `tessera keys create|list|revoke` and `tessera audit`: people, their keys
and the audit log, through the gateway's admin routes (services/gateway/routers/admin.py) with the admin key."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx
from rich.table import Table

from shared.errors import InvalidArgument, NotFound, PermissionDenied, Unavailable
from shared.runtime import secrets
from shared.runtime.config import Settings
from shared.tools.progress import console


def _call(settings: Settings, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
    host = settings.public_host()
    base = f"http://{f'[{host}]' if ':' in host else host}:{settings.gateway.port}"
    headers = {"Authorization": f"Bearer {secrets.ensure(settings, secrets.ADMIN_KEY)}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            r = http.request(method, path, json=body, params=params)
    except httpx.HTTPError as exc:
        raise Unavailable(f"the gateway at {base} did not answer ({type(exc).__name__}); is the mesh up (tessera up)?") from None
    if r.status_code >= 400:
        try:
            message = str(r.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = r.text[:300]
        errors: dict[int, type[InvalidArgument | NotFound | PermissionDenied]] = {400: InvalidArgument, 404: NotFound,
                                                                                403: PermissionDenied, 422: InvalidArgument}
        raise errors[r.status_code](message) if r.status_code in errors else Unavailable(message)
    return r.json()


def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    u = _call(settings, "POST", "/api/v1/admin/users", {"name": args.name, "role": args.role})
    console.print(f"[green]✓[/] user {u['name']} ({u['role']}); give them a key: tessera keys create --user {u['name']}", highlight=False)
    return 0


def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    users = _call(settings, "GET", "/api/v1/admin/users")["users"]
    if args.json:
        print(json.dumps(users))
        return 0
    table = Table(title_justify="left")
    for col in ("name", "role", "disabled", "keys", "created"):
        table.add_column(col)
    for u in users:
        table.add_row(u["name"], u["role"], "yes" if u["disabled"] else "", str(u["keys"]), u["created_at"][:19])
    console.print(table if users else "no users: the admin key is the only principal (tessera users add NAME --role writer)")
    return 0


def cmd_users_disabled(settings: Settings, args: argparse.Namespace) -> int:
    u = _call(settings, "PATCH", f"/api/v1/admin/users/{args.name}", {"disabled": args.disabled})
    console.print(f"[green]✓[/] {u['name']} " + ("disabled: their keys stop working within seconds" if u["disabled"] else "enabled"),
                  highlight=False)
    return 0


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    projects = [p.strip() for p in args.projects.split(",") if p.strip()] if args.projects else None
    k = _call(settings, "POST", "/api/v1/admin/keys", {"user": args.user, "projects": projects})
    if args.json:
        print(json.dumps(k))
        return 0
    console.print(f"key {k['id']} for {k['user']}, projects: {', '.join(k['projects']) if k['projects'] else 'all'}", highlight=False)
    console.print("It is shown once; only its digest is kept:", highlight=False)
    print(k["key"])
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    keys = _call(settings, "GET", "/api/v1/admin/keys", params={"user": args.user})["keys"]
    if args.json:
        print(json.dumps(keys))
        return 0
    table = Table(title_justify="left")
    for col in ("id", "user", "starts", "projects", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(k["id"], k["user"], k["prefix"] + "…", ", ".join(k["projects"]) if k["projects"] else "all",
                      k["created_at"][:19], (k["revoked_at"] or "")[:19])
    console.print(table if keys else "no keys")
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    _call(settings, "DELETE", f"/api/v1/admin/keys/{args.id}")
    console.print(f"[green]✓[/] key {args.id} revoked: it stops working within seconds", highlight=False)
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    entries = _call(settings, "GET", "/api/v1/audit", params={"since": args.since, "action": args.action, "limit": str(args.limit)})["entries"]
    if args.json:
        print(json.dumps(entries))
        return 0
    table = Table(title_justify="left")
    for col in ("at", "who", "surface", "action", "request", "status", "project", "request id"):
        table.add_column(col)
    for e in entries:
        table.add_row(e["at"][:19], e["principal"] or "(no valid key)", e["surface"], e["action"], f"{e['method']} {e['object']}",
                      str(e["status"]), e["project"], e["request_id"])
    console.print(table if entries else f"nothing audited in the last {args.since}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    users = sub.add_parser("users", help="the people who may use this Tessera (admin key)").add_subparsers(dest="users_command", required=True)
    p = users.add_parser("add", help="a new user; then give them a key with tessera keys create")
    p.add_argument("name")
    p.add_argument("--role", choices=("reader", "writer", "admin"), default="reader",
                   help="reader: search, read, ask; writer: also capture, ingest, edit, delete; admin: also users, keys, audit")
    p.set_defaults(fn=cmd_users_add)
    p = users.add_parser("list", help="users, their roles and how many live keys each has")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_users_list)
    for verb, disabled in (("disable", True), ("enable", False)):
        p = users.add_parser(verb, help=f"{verb} a user (their keys {'stop' if disabled else 'work again'})")
        p.add_argument("name")
        p.set_defaults(fn=cmd_users_disabled, disabled=disabled)
    keys = sub.add_parser("keys", help="people's API keys (admin key)").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="a new key for a user, printed once")
    p.add_argument("--user", required=True)
    p.add_argument("--projects", default="", help="comma-separated projects it reaches; left out: every project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_keys_create)
    p = keys.add_parser("list", help="keys (never the keys themselves: their first characters)")
    p.add_argument("--user", default="")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_keys_list)
    p = keys.add_parser("revoke", help="a key stops working")
    p.add_argument("id")
    p.set_defaults(fn=cmd_keys_revoke)
    p = sub.add_parser("audit", help="the audit log: writes, reads of documents and denied requests (admin key)")
    p.add_argument("--since", default="1d", help="a window: 1d, 36h, 2w")
    p.add_argument("--action", choices=("", "write", "read", "denied"), default="")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_audit)
