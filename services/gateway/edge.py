"""The HTTP edge's one guard, in front of every route, REST, OpenAI, SSE, MCP and the page alike.

In order, for every request:

1. **Host.** The Host header must name the gateway: a loopback name, TESSERA_HOST / TESSERA_ADVERTISE_HOST, or one
   of TESSERA_GATEWAY_ALLOWED_HOSTS. Any other name is a DNS-rebinding page (``attacker.example`` resolving to
   127.0.0.1) and gets 403.
2. **Origin.** A request that carries an Origin (every cross-site fetch, XHR, form post and EventSource does) must
   come from the gateway's own origins (those host names on its HTTP and HTTPS ports: never "any loopback port",
   which another local program could serve) or TESSERA_GATEWAY_ALLOWED_ORIGINS; else 403.
3. **Key.** Outside the public paths (the page's shell and assets, health, the login link), a key is required,
   loopback included: ``Authorization: Bearer <key>`` (the admin key of ``<data_dir>/secrets/admin-key``, or one of
   TESSERA_GATEWAY_API_KEYS), or the page's session cookie from a one-time login link, which counts only for the
   page's own requests (``Sec-Fetch-Site: same-origin``: another port of 127.0.0.1 is the same *site*). A client address that sent
   more than TESSERA_GATEWAY_AUTH_FAILURES bad keys this minute gets 429 before its key is even looked at.
4. **Rate.** Requests per identity per minute (TESSERA_GATEWAY_RATE_LIMIT).

The checks are pure functions of the headers (``host_allowed``, ``origin_allowed``), unit-tested; the class wires
them to ASGI and to the counters.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from http.cookies import SimpleCookie

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway import convert
from services.gateway.auth import AuthError, KeyRing, Limited, RateLimiter
from services.gateway.bodies import discard_body
from shared.runtime.cache import Cache
from shared.runtime.config import Settings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
#: Paths anyone may load: the page's shell and assets (they hold no notes), health, and the login link itself.
PUBLIC_EXACT = frozenset({"/", "/docs", "/healthz", "/readyz", "/login", "/favicon.ico", "/sw.js", "/manifest.webmanifest"})
#: /api/v1/hooks/: a webhook's credential is its source's signature (routers/hooks.py), not an API key.
PUBLIC_PREFIXES = ("/web/", "/docs/assets/", "/api/v1/hooks/")
SESSION_COOKIE = "tessera_session"
WINDOW_S = 60


def is_public(path: str) -> bool:
    return path in PUBLIC_EXACT or path.startswith(PUBLIC_PREFIXES)


def host_names(settings: Settings) -> set[str]:
    """The names the gateway answers to (lower case, IPv6 in brackets)."""
    names = {n for n in LOOPBACK_NAMES}
    for name in (settings.core.host, settings.core.advertise_host, *settings.gateway.allowed_hosts):
        name = name.strip().lower()
        if name and name not in ("0.0.0.0", "::", "[::]"):
            names.add(f"[{name}]" if ":" in name and not name.startswith("[") else name)
    return names


def split_host(host: str) -> tuple[str, int | None]:
    """('name', port) of a Host header or an origin's authority; ('', None) when it is malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "", None
        name, rest = host[:end + 1], host[end + 1:]
    else:
        name, _, port_text = host.partition(":")
        rest = f":{port_text}" if _ else ""
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit() or len(rest) > 6:
        return "", None
    return name, int(rest[1:])


def host_allowed(host: str, names: set[str]) -> bool:
    name, _ = split_host(host)
    return bool(name) and name in names


def own_origins(settings: Settings, names: Iterable[str]) -> set[str]:
    """The gateway's own origins: each of its names on its HTTP port and its HTTPS port (default ports omitted)."""
    out = set()
    for name in names:
        if name == "::1":
            continue
        for scheme, port, default in (("http", settings.gateway.port, 80), ("https", settings.gateway.tls_port, 443)):
            out.add(f"{scheme}://{name}" if port == default else f"{scheme}://{name}:{port}")
    return out


def origin_allowed(origin: str, allowed: set[str]) -> bool:
    return origin.strip().lower().rstrip("/") in allowed


class Sessions:
    """The page's session cookies: ``<expiry>.<nonce>.<hmac>``, signed with the session key, checked without state."""

    def __init__(self, key: str, hours: float) -> None:
        self._key = key.encode()
        self.max_age_s = int(hours * 3600)

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None) -> str:
        payload = f"{int((now or time.time()) + self.max_age_s)}.{_random.token_hex(16)}"
        return f"{payload}.{self._sign(payload)}"

    def valid(self, value: str, now: float | None = None) -> bool:
        payload, _, mac = value.rpartition(".")
        expiry = payload.partition(".")[0]
        if not payload or not expiry.isdigit() or not hmac.compare_digest(mac, self._sign(payload)):
            return False
        return int(expiry) > (now or time.time())


@dataclass
class FailedKeys:
    """Bad keys per client address in the last minute (a sliding minute, so failures on both sides of a clock minute
    still add up): in this process always, and in Redis when it answers (so every gateway instance sees them)."""

    limit: int
    cache: Cache | None

    def __post_init__(self) -> None:
        self._local: dict[str, list[float]] = {}

    def _recent(self, client: str, now: float) -> list[float]:
        times = [t for t in self._local.get(client, ()) if t > now - WINDOW_S]
        if times:
            self._local[client] = times
        else:
            self._local.pop(client, None)
        return times

    def blocked(self, client: str) -> Limited | None:
        if not self.limit:
            return None
        now = time.time()
        times = self._recent(client, now)
        if len(times) >= self.limit:
            frees_at = times[len(times) - self.limit] + WINDOW_S  # when the count falls below the limit again
            return Limited(self.limit, max(1, int(frees_at - now) + 1), what="failed keys per minute reached for this address")
        return None

    async def failed(self, client: str) -> None:
        now = time.time()
        for other in [c for c in self._local if c != client]:
            self._recent(other, now)
        times = [*self._recent(client, now), now]
        if self.cache is not None:
            window = int(now // WINDOW_S)
            shared = await self.cache.count(f"authfail:{client}:{window}", WINDOW_S + 5)
            if shared is not None and shared > len(times):
                times += [now] * (shared - len(times))  # other instances' failures this minute
        self._local[client] = times


def _cookie(headers: dict[str, str], name: str) -> str:
    raw = headers.get("cookie", "")
    if not raw or len(raw) > 8192:
        return ""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 — boundary: an untrusted header's parse; a malformed cookie is no session
        return ""
    morsel = jar.get(name)
    return morsel.value if morsel is not None else ""


class EdgeGuard:
    """The checks of the module docstring, before any route runs."""

    def __init__(self, app: ASGIApp, settings: Settings, keys: KeyRing, limiter: RateLimiter, cache: Cache | None,
                 sessions: Sessions) -> None:
        self.app, self.keys, self.limiter, self.sessions = app, keys, limiter, sessions
        self.names = host_names(settings)
        self.origins = own_origins(settings, self.names) | {o.strip().lower().rstrip("/") for o in settings.gateway.allowed_origins}
        self.failures = FailedKeys(settings.gateway.auth_failures, cache)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        client = (scope.get("client") or ("unknown", 0))[0]
        host, origin = headers.get("host", ""), headers.get("origin")
        if not host_allowed(host, self.names):
            await self._refuse(scope, receive, send, 403, "invalid_host",
                               f"the Host {host[:100]!r} is not a name this gateway answers to; add it to TESSERA_GATEWAY_ALLOWED_HOSTS")
            return
        if origin is not None and not origin_allowed(origin, self.origins):
            await self._refuse(scope, receive, send, 403, "invalid_origin",
                               f"requests from the origin {origin[:100]!r} are not allowed; add it to TESSERA_GATEWAY_ALLOWED_ORIGINS")
            return
        if is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        blocked = self.failures.blocked(client)
        if blocked is not None:
            await self._refuse(scope, receive, send, 429, "too_many_failed_keys", str(blocked),
                               {"Retry-After": str(blocked.retry_after_s)})
            return
        try:
            session = "" if "authorization" in headers else _cookie(headers, SESSION_COOKIE)
            if session and self.sessions.valid(session):
                # The cookie is the browser's, so the browser says who asks: another port of the same host is the same
                # *site*, and a SameSite cookie goes with its <img>, <script> and <iframe> loads (no Origin header).
                if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                    await self._refuse(scope, receive, send, 403, "cross_site_request",
                                       "a session cookie is only good for requests of the page itself (Sec-Fetch-Site: "
                                       f"{headers.get('sec-fetch-site')}); other clients send 'Authorization: Bearer <key>'")
                    return
                who = "session:" + hashlib.sha256(session.encode()).hexdigest()[:16]
            else:
                who = self.keys.identify(headers.get("authorization"), client)
        except AuthError as exc:
            await self.failures.failed(client)
            await self._refuse(scope, receive, send, 401, "invalid_api_key", str(exc), {"WWW-Authenticate": "Bearer"})
            return
        try:
            await self.limiter.check(who)
        except Limited as exc:
            await self._refuse(scope, receive, send, 429, "rate_limit_exceeded", str(exc), {"Retry-After": str(exc.retry_after_s)})
            return
        scope.setdefault("state", {})["tessera_who"] = who
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str,
                      headers: dict[str, str] | None = None) -> None:
        await discard_body(receive)  # or Hypercorn may close the connection under the client's next request
        await JSONResponse(convert.error_body(status, message, code), status_code=status, headers=headers)(scope, receive, send)
