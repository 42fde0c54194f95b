"""Generated secrets under ``<data_dir>/secrets``: the admin key, the embedded servers' passwords, the page's
session key.

Each secret is one file, mode 0600, in a 0700 folder, made the first time something asks for it: written under a
random temporary name and linked into place (``os.link`` fails when another process won the race, which then reads
the winner's), so a half-written secret is never read and two processes never hold different ones. Secrets are
read with ``O_NOFOLLOW``: a symlink planted in place of one is refused. Nothing here prints a secret; URLs that
carry one go through :func:`redact` before they reach a log or a terminal.

The embedded servers' URLs in the settings carry no password: :func:`database_url`, :func:`nats_url` and
:func:`redis_url` add the generated one when the server is embedded and the URL names none. An external server
keeps exactly the URL the user gave.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets as _random
import stat
import time
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from shared.errors import ConfigError
from shared.runtime.config import Settings

#: The gateway's admin key: the CLI, `tessera mcp`, the SDK's HTTP users and the tests read it from here.
ADMIN_KEY = "admin-key"
#: Signs the web page's session cookies (after the one-time login link).
SESSION_KEY = "session-key"
#: Embedded PostgreSQL roles by duty: the superuser (setup steps only), the owner (migrations), the runtime role
#: (the services) and the backup role (snapshots).
PG_ROLES = ("superuser", "owner", "runtime", "backup")
PgRole = Literal["superuser", "owner", "runtime", "backup"]
#: Role names of the embedded server (the runtime role is the URL's user, "tessera" by default).
PG_SUPERUSER, PG_OWNER, PG_BACKUP = "postgres", "tessera_owner", "tessera_backup"
#: The fixed role names; the runtime role's is the URL's user.
PG_ROLE_NAMES: dict[str, str] = {"superuser": PG_SUPERUSER, "owner": PG_OWNER, "backup": PG_BACKUP}
NATS_USER = "tessera"

_NAME = re.compile(r"[a-z0-9-]{1,64}")


def folder(settings: Settings) -> Path:
    return settings.path("secrets")


def _ensure_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ConfigError("secrets", f"secrets: {path} is not a plain folder")
    if stat.S_IMODE(st.st_mode) != 0o700:
        path.chmod(0o700)


def read(settings: Settings, name: str) -> str | None:
    """A secret's value, or None when it was never made."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"secrets: bad secret name {name!r}")
    path = folder(settings) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError("secrets", f"secrets: cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "r") as f:
        value = f.read().strip()
    return value or None


def ensure(settings: Settings, name: str, nbytes: int = 32) -> str:
    """The secret ``name``, made now (random, URL-safe) when it does not exist yet."""
    existing = read(settings, name)
    if existing is not None:
        return existing
    where = folder(settings)
    _ensure_folder(where)
    value = _random.token_urlsafe(nbytes)
    tmp = where / f".{name}.{_random.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        try:
            os.link(tmp, where / name)
        except FileExistsError:
            pass  # another process made it first: theirs is the secret
    finally:
        tmp.unlink(missing_ok=True)
    found = read(settings, name)
    assert found is not None
    return found


def ensure_all(settings: Settings) -> None:
    """Every secret the embedded default needs, made once at setup."""
    ensure(settings, ADMIN_KEY)
    ensure(settings, SESSION_KEY)
    if "postgres" in settings.infra.embedded:
        for role in PG_ROLES:
            ensure(settings, f"postgres-{role}")
    if "nats" in settings.infra.embedded:
        ensure(settings, "nats-password")
    if "redis" in settings.infra.embedded:
        ensure(settings, "redis-password")


def redact(url: str) -> str:
    """A URL fit to print: any password replaced by ***."""
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def _with_credentials(url: str, user: str | None, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='') if user else ''}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def pg_role_name(settings: Settings, role: PgRole) -> str:
    if role == "runtime":
        return urlsplit(settings.infra.database_url).username or "tessera"
    return PG_ROLE_NAMES[role]


def database_url(settings: Settings, role: PgRole = "runtime") -> str:
    """The URL to connect with: the embedded server's ``role`` with its generated password, or the user's URL."""
    url = settings.infra.database_url
    if "postgres" not in settings.infra.embedded or urlsplit(url).password:
        return url
    password = read(settings, f"postgres-{role}")
    if password is None:
        raise ConfigError("TESSERA_DATABASE_URL", f"secrets: no password for the embedded PostgreSQL's {role} role under "
                                                  f"{folder(settings)}; `tessera up` (make run) makes it")
    return _with_credentials(url, pg_role_name(settings, role), password)


def nats_url(settings: Settings) -> str:
    url = settings.infra.nats_url
    if "nats" not in settings.infra.embedded or urlsplit(url).password:
        return url
    password = read(settings, "nats-password")
    return url if password is None else _with_credentials(url, NATS_USER, password)


def redis_url(settings: Settings) -> str:
    url = settings.infra.redis_url
    if "redis" not in settings.infra.embedded or urlsplit(url).password:
        return url
    password = read(settings, "redis-password")
    return url if password is None else _with_credentials(url, urlsplit(url).username, password)


def rpc_key(settings: Settings) -> str:
    """The key a gRPC caller sends: the first of TESSERA_RPC_KEYS, else this data directory's admin key."""
    return settings.rpc.rpc_keys[0] if settings.rpc.rpc_keys else ensure(settings, ADMIN_KEY)


def rpc_keys(settings: Settings) -> list[str]:
    """The keys a gRPC server accepts: the admin key and TESSERA_RPC_KEYS."""
    return [ensure(settings, ADMIN_KEY), *settings.rpc.rpc_keys]


class BearerKeys:
    """Keys presented as ``Bearer <key>``, compared as SHA-256 digests in constant time; only a digest prefix leaves.
    The HTTP edge and every gRPC server check keys with it, each answering in its own words."""

    def __init__(self, keys: list[str]) -> None:
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys if k]

    def check(self, authorization: str | None) -> tuple[Literal["ok", "missing", "malformed", "wrong"], str]:
        """("ok", the key's digest prefix), or why not: no header, not ``Bearer <key>``, or not one of the keys."""
        if not authorization:
            return "missing", ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "malformed", ""
        digest = hashlib.sha256(token.strip().encode()).digest()
        if not any(hmac.compare_digest(digest, known) for known in self._digests):
            return "wrong", ""
        return "ok", digest.hex()[:16]


def _login_folder(settings: Settings) -> Path:
    return folder(settings) / "login"


def new_login_token(settings: Settings) -> str:
    """A one-time login token for the web page (``tessera login``, printed by ``tessera up``): only its SHA-256 is
    kept, as an empty 0600 file under ``secrets/login/``; the gateway's /login removes it when it is used."""
    where = _login_folder(settings)
    _ensure_folder(folder(settings))
    _ensure_folder(where)
    token = _random.token_urlsafe(32)
    fd = os.open(where / hashlib.sha256(token.encode()).hexdigest(), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    return token


def redeem_login_token(settings: Settings, token: str, ttl_s: float) -> bool:
    """Use a login token once: True when it was issued less than ``ttl_s`` ago and not used yet (whoever removes
    its file first wins; a second try finds nothing)."""
    if not token or len(token) > 128:
        return False
    path = _login_folder(settings) / hashlib.sha256(token.encode()).hexdigest()
    try:
        age = time.time() - os.lstat(path).st_mtime
        path.unlink()
    except OSError:
        return False
    return age <= ttl_s


def login_link(settings: Settings) -> str:
    """The page's address with a new one-time login token."""
    host = settings.public_host()
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.gateway.port}/login?token={new_login_token(settings)}"
