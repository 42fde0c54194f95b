"""Webhook sources (``tessera hooks``): each a name, a kind (generic, slack, github), where its notes go, and a secret.

The list is ``<secrets>/hooks.json`` and each secret ``<secrets>/hooks/<name>.secret``, all 0600 in 0700 folders: the
command line writes them, the gateway reads them on each call (so a hook added or rotated works at once). A secret is
never printed or logged: ``add`` and ``rotate`` say where it is, for the person to paste into Slack or GitHub. After
a rotation the previous secret still verifies for ``ROTATE_GRACE_S``, while the source is given the new one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets as _random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import InvalidArgument, NotFound
from shared.runtime import secrets
from shared.runtime.config import Settings
from shared.runtime.files import atomic_write

KINDS = ("generic", "slack", "github")
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
#: How long a rotated-out secret still verifies.
ROTATE_GRACE_S = 3600


@dataclass
class Hook:
    name: str
    kind: str
    project: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    rotated_at: str = ""

    def public(self, base_url: str) -> dict[str, Any]:
        return {**asdict(self), "url": f"{base_url.rstrip('/')}/api/v1/hooks/{self.name}"}


def _folder(settings: Settings) -> Path:
    where = secrets.folder(settings)
    (where / "hooks").mkdir(parents=True, exist_ok=True, mode=0o700)
    return where


def secret_path(settings: Settings, name: str, previous: bool = False) -> Path:
    return secrets.folder(settings) / "hooks" / f"{name}.{'previous' if previous else 'secret'}"


def load(settings: Settings) -> dict[str, Hook]:
    try:
        raw = json.loads((secrets.folder(settings) / "hooks.json").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"hooks: {secrets.folder(settings) / 'hooks.json'} cannot be read: {exc}") from None
    return {name: Hook(**h) for name, h in raw.items()}


def _save(settings: Settings, hooks: dict[str, Hook]) -> None:
    atomic_write(_folder(settings) / "hooks.json", json.dumps({n: asdict(h) for n, h in sorted(hooks.items())}, indent=2) + "\n",
                 mode=0o600)


def _write_secret(settings: Settings, name: str, value: str) -> Path:
    _folder(settings)
    path = secret_path(settings, name)
    atomic_write(path, value + "\n", mode=0o600)
    return path


def _given_or_new(given: str | None) -> str:
    if given is None:
        return _random.token_urlsafe(32)
    value = given.strip()
    if len(value) < 16:
        raise InvalidArgument("hooks: a secret needs 16 characters or more")
    return value


def add(settings: Settings, name: str, kind: str, project: str = "", tags: list[str] | None = None,
        secret: str | None = None) -> tuple[Hook, Path]:
    """A new hook, and the path of its secret (``secret``: the source's own, as Slack's signing secret; else a new one)."""
    if not NAME.fullmatch(name):
        raise InvalidArgument(f"hooks: {name!r} is not a hook name: lower-case letters, digits and dashes, 40 at most")
    if kind not in KINDS:
        raise InvalidArgument(f"hooks: kind {kind!r}; one of {', '.join(KINDS)}")
    hooks = load(settings)
    if name in hooks:
        raise InvalidArgument(f"hooks: {name!r} exists; `tessera hooks rotate {name}` gives it a new secret")
    hook = Hook(name, kind, project, list(tags or []), dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    path = _write_secret(settings, name, _given_or_new(secret))
    hooks[name] = hook
    _save(settings, hooks)
    return hook, path


def rotate(settings: Settings, name: str, secret: str | None = None) -> tuple[Hook, Path]:
    """A new secret for the hook; the old one still verifies for ROTATE_GRACE_S."""
    hooks = load(settings)
    if name not in hooks:
        raise NotFound(f"hooks: no hook named {name!r}")
    current = secret_path(settings, name)
    if current.exists():
        os.replace(current, secret_path(settings, name, previous=True))
    path = _write_secret(settings, name, _given_or_new(secret))
    hooks[name].rotated_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _save(settings, hooks)
    return hooks[name], path


def remove(settings: Settings, name: str) -> None:
    hooks = load(settings)
    if hooks.pop(name, None) is None:
        raise NotFound(f"hooks: no hook named {name!r}")
    _save(settings, hooks)
    for previous in (False, True):
        secret_path(settings, name, previous).unlink(missing_ok=True)


def secrets_of(settings: Settings, hook: Hook) -> list[bytes]:
    """The secrets that verify the hook's calls now: its own, and the previous one within ROTATE_GRACE_S of a rotation."""
    out = []
    for previous in (False, True):
        path = secret_path(settings, hook.name, previous)
        try:
            value = path.read_bytes().strip()
        except FileNotFoundError:
            continue
        if previous and (not hook.rotated_at or (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(hook.rotated_at)).total_seconds()
                         > ROTATE_GRACE_S):
            continue
        if value:
            out.append(value)
    return out
