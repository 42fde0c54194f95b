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
from urllib.parse import unquote_plus

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway import convert
from services.gateway.auth import AuthError, KeyRing, Limited, RateLimiter
from services.gateway.bodies import discard_body
from services.gateway.deps import audit_note
from services.gateway.principals import AuditEntry
from shared.errors import Unavailable
from shared.runtime import principal
from shared.runtime.cache import Cache
from shared.runtime.config import Settings
from shared.runtime.logs import current_request_id

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
#: Paths anyone may load: the page's shell and assets (they hold no notes), health, and the login link itself.
PUBLIC_EXACT = frozenset({"/", "/docs", "/healthz", "/readyz", "/login", "/favicon.ico", "/sw.js", "/manifest.webmanifest"})
#: /api/v1/hooks/: a webhook's credential is its source's signature (routers/hooks.py), not an API key.
PUBLIC_PREFIXES = ("/web/", "/docs/assets/", "/api/v1/hooks/")
SESSION_COOKIE = "tessera_session"
WINDOW_S = 60


#: POSTs that only read (a search, a question, a rendering): a reader may send them.
READ_POSTS = frozenset({"/api/v1/search", "/api/v1/chat", "/v1/chat/completions", "/v1/embeddings", "/api/v1/markdown",
                        "/api/v1/session"})
#: Only an admin: people and keys, and the audit log.
ADMIN_PREFIXES = ("/api/v1/admin/", "/api/v1/audit")
#: MCP over HTTP: every request is a POST; each tool checks the role and the project itself (shared/agents/mcp.py).
MCP_PREFIX = "/mcp"


def permission(method: str, path: str, who: principal.Principal) -> str | None:
    """Why this principal may not make this request (a sentence), or None. Which projects it reaches is decided
    where the data is (row-level security) and by the routes that name a project."""
    if who.admin:
        return None
    if path.startswith(ADMIN_PREFIXES):
        return f"{who.name} is a {who.role}; {path.split('?')[0][:60]} needs an admin key"
    writes = method not in ("GET", "HEAD", "OPTIONS") and path not in READ_POSTS and not path.startswith(MCP_PREFIX)
    if writes and who.role == "reader" and not path.startswith("/api/v1/conversations/"):
        return f"{who.name} is a reader: a reader may search, read and ask; {method} {path[:60]} needs a writer key"
    return None


def audited(method: str, path: str) -> str | None:
    """What the audit log calls this request when it succeeds: a write, a read of a document's content, or nothing."""
    if path.startswith(MCP_PREFIX):  # a tool call's body says what it does; its refusals are tool errors
        return None
    if method not in ("GET", "HEAD", "OPTIONS") and path not in READ_POSTS:
        return "write"
    if path.startswith("/api/v1/documents/") and method == "GET":
        return "read"
    return None


def surface(path: str) -> str:
    if path.startswith("/v1/"):
        return "openai"
    if path.startswith("/mcp"):
        return "mcp"
    return "rest" if path.startswith("/api/") else "web"


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
    """The page's session cookies: ``<expiry>.<nonce>.<subject>.<hmac>``, signed with the session key, checked without
    state. The subject is the person's key id ('' for the admin: the login link, or the admin key exchanged)."""

    def __init__(self, key: str, hours: float) -> None:
        self._key = key.encode()
        self.max_age_s = int(hours * 3600)

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, now: float | None = None, subject: str = "") -> str:
        payload = f"{int((now or time.time()) + self.max_age_s)}.{_random.token_hex(16)}.{subject}"
        return f"{payload}.{self._sign(payload)}"

    def subject(self, value: str, now: float | None = None) -> str | None:
        """The session's subject ('' the admin, else a key id), or None when the cookie is forged or expired."""
        payload, _, mac = value.rpartition(".")
        expiry, _, rest = payload.partition(".")
        if not payload or not expiry.isdigit() or not hmac.compare_digest(mac, self._sign(payload)):
            return None
        if int(expiry) <= (now or time.time()):
            return None
        return rest.partition(".")[2]

    def valid(self, value: str, now: float | None = None) -> bool:
        return self.subject(value, now) is not None


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
        who_p = principal.SYSTEM
        try:
            session = "" if "authorization" in headers else _cookie(headers, SESSION_COOKIE)
            subject = self.sessions.subject(session) if session else None
            if subject is not None:
                # The cookie is the browser's, so the browser says who asks: another port of the same host is the same
                # *site*, and a SameSite cookie goes with its <img>, <script> and <iframe> loads (no Origin header).
                if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                    await self._refuse(scope, receive, send, 403, "cross_site_request",
                                       "a session cookie is only good for requests of the page itself (Sec-Fetch-Site: "
                                       f"{headers.get('sec-fetch-site')}); other clients send 'Authorization: Bearer <key>'")
                    return
                who = "session:" + hashlib.sha256(session.encode()).hexdigest()[:16]
                if subject:  # a person's key exchanged for this cookie: revoked or disabled since, it stops here
                    who_p = await self.keys.resolve_id(subject)
            else:
                who, who_p = await self.keys.resolve(headers.get("authorization"), client)
        except AuthError as exc:
            await self.failures.failed(client)
            self._audit(scope, None, "denied", 401, headers)
            await self._refuse(scope, receive, send, 401, "invalid_api_key", str(exc), {"WWW-Authenticate": "Bearer"})
            return
        except Unavailable as exc:
            await self._refuse(scope, receive, send, 503, "UNAVAILABLE", exc.message)
            return
        refusal = permission(scope.get("method", "GET"), scope["path"], who_p)
        if refusal is not None:
            self._audit(scope, who_p, "denied", 403, headers)
            await self._refuse(scope, receive, send, 403, "permission_denied", refusal)
            return
        try:
            await self.limiter.check(who)
        except Limited as exc:
            await self._refuse(scope, receive, send, 429, "rate_limit_exceeded", str(exc), {"Retry-After": str(exc.retry_after_s)})
            return
        scope.setdefault("state", {})["tessera_who"] = who
        await self._serve(scope, receive, send, who_p, headers)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, who_p: principal.Principal, headers: dict[str, str]) -> None:
        """Run the route as ``who_p`` (every call to a service carries it), and audit what it did."""
        action = audited(scope.get("method", "GET"), scope["path"])
        watch = self.keys.people is not None and (action is not None or not who_p.system)  # an admin's reads: nothing to audit
        status, note = 0, dict[str, str]()

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        token, noted = principal.current.set(who_p), audit_note.set(note)  # a route names the project it reached
        try:
            await self.app(scope, receive, send_seen if watch else send)
        finally:
            principal.current.reset(token)
            audit_note.reset(noted)
            if status == 403:
                self._audit(scope, who_p, "denied", status, headers, note.get("project", ""))
            elif action is not None and 200 <= status < 300:
                self._audit(scope, who_p, action, status, headers, note.get("project", ""))

    def _audit(self, scope: Scope, who: principal.Principal | None, action: str, status: int, headers: dict[str, str],
               project: str = "") -> None:
        if self.keys.people is None:
            return
        path = scope["path"]
        query = (scope.get("query_string") or b"").decode("latin-1")
        project = project or next((unquote_plus(v) for k, _, v in (part.partition("=") for part in query.split("&")) if k == "project"), "")
        self.keys.people.record(AuditEntry(
            principal=who.label if who is not None else "", key_id=who.key_id if who is not None else "",
            surface=surface(path), action=action, method=scope.get("method", ""), object=path, project=project[:200],
            status=status, request_id=current_request_id()))

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str, message: str,
                      headers: dict[str, str] | None = None) -> None:
        await discard_body(receive)  # or Hypercorn may close the connection under the client's next request
        await JSONResponse(convert.error_body(status, message, code), status_code=status, headers=headers)(scope, receive, send)
