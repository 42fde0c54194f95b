"""Who a request acts for, carried from the edge to every query that reads user content.

The gateway resolves a key to a :class:`Principal` and sets :data:`current` for the request. Each gRPC call carries
it as metadata (``tessera-principal``; :func:`to_metadata`), the next service's interceptor sets :data:`current` again
(:func:`from_metadata`), and every pooled PostgreSQL connection gets it as settings before it is handed out
(:func:`settings_for`), where the row-level security policies of migration 0012 read it. Background work (an embed
worker, enrichment, upkeep) runs as :data:`SYSTEM`, which sees every project.

A principal in metadata is believed only because the call carried a service key (shared.runtime.rpc.CallerKeys): a
person's key is checked by the gateway, never by the services.
"""

from __future__ import annotations

import contextvars
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["reader", "writer", "admin"]
ROLES: tuple[Role, ...] = ("reader", "writer", "admin")
#: Call metadata key (lower case, as gRPC wants).
HEADER = "tessera-principal"
#: A project name a key may be scoped to (what the policies compare; no comma, which separates them).
PROJECT = re.compile(r"[\w.\- ]{1,200}")
USER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Principal:
    """``name`` '' is the system; ``projects`` None is every project."""

    name: str
    role: Role
    projects: tuple[str, ...] | None = None
    key_id: str = ""

    @property
    def system(self) -> bool:
        return self.name == ""

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def can_write(self) -> bool:
        return self.role in ("writer", "admin")

    def sees(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    def unreachable(self, project: str, *, writes: bool = False) -> str | None:
        """Why a request naming ``project`` may not go on (a sentence), or None. A read naming no project reads every
        project the key reaches; a write naming none writes the default project, which only an every-project key reaches."""
        if self.sees(project) or (not project and not writes):
            return None
        where = f"project {project!r}" if project else "the default project (name one of your projects)"
        return f"{self.name}'s key does not reach {where}; it reaches {', '.join(self.projects or ()) or 'no project'}"

    @property
    def label(self) -> str:
        """How logs and the audit name it."""
        return self.name or "admin"

    def scope(self) -> str:
        """A short, stable text of what it may see (result cache keys include it)."""
        return "*" if self.projects is None and (self.admin or self.system) else \
            f"{self.name}:{self.role}:{','.join(sorted(self.projects)) if self.projects is not None else '*'}"


#: Background work and the admin key: every project, everyone's conversations and jobs.
SYSTEM = Principal("", "admin")
#: What a malformed principal becomes where nothing refused it: no project, no one's conversations.
NOBODY = Principal("nobody", "reader", ())
current: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=SYSTEM)


def settings_for(p: Principal) -> tuple[str, str, str]:
    """(tessera.principal, tessera.projects, tessera.admin) as the policies read them."""
    projects = "*" if p.projects is None else ",".join(p.projects)
    if p.projects is not None and not p.projects:
        projects = "!"  # no project at all, not even the default one '' (an empty setting would read as the system's)
    return p.name, projects, "1" if p.admin else ""


SET_SQL = ("SELECT set_config('tessera.principal', %s, false), set_config('tessera.projects', %s, false), "
           "set_config('tessera.admin', %s, false)")


def to_metadata(p: Principal) -> tuple[str, str] | None:
    """The call metadata that carries ``p`` (None for the system: no header is the system)."""
    if p.system:
        return None
    return HEADER, json.dumps({"n": p.name, "r": p.role, "p": list(p.projects) if p.projects is not None else None,
                               "k": p.key_id}, separators=(",", ":"))


def from_metadata(value: Any) -> Principal:
    """The principal a call's ``tessera-principal`` names; a malformed one is refused (ValueError), never read as
    the system."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    try:
        raw = json.loads(value)
        name, role, projects, key_id = raw["n"], raw["r"], raw["p"], raw.get("k", "")
    except (ValueError, KeyError, TypeError):
        raise ValueError("the tessera-principal metadata is not a principal") from None
    if not isinstance(name, str) or not USER_NAME.fullmatch(name) or role not in ROLES or not isinstance(key_id, str):
        raise ValueError("the tessera-principal metadata names no valid user and role")
    if projects is not None and (not isinstance(projects, list) or
                                 not all(isinstance(x, str) and PROJECT.fullmatch(x) for x in projects)):
        raise ValueError("the tessera-principal metadata has a bad project list")
    return Principal(name, role, tuple(projects) if projects is not None else None, key_id)
