"""The web page and the API's own documentation, served by the gateway from local files only.

``/`` is the web app (plain HTML, CSS and JavaScript modules under
``services/gateway/web``; no build step). ``/docs`` is Swagger UI from the
``swagger-ui-dist`` npm package that ``make setup`` installs, so neither page
asks any other host for anything. The page and its assets are public; the key a
person types is exchanged once for an HttpOnly session cookie (POST /api/v1/session),
which its API calls then carry.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from services.gateway.deps import AUTH
from shared.runtime import principal, secrets
from shared.runtime.config import PROJECT_ROOT

WEB = Path(__file__).resolve().parents[1] / "web"
SWAGGER = PROJECT_ROOT / "node_modules" / "swagger-ui-dist"
AXE = PROJECT_ROOT / "node_modules" / "axe-core"
#: The page may load scripts, styles and images from the gateway itself only, and talk to nothing else.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(WEB / "index.html", headers=HEADERS)


def _shell() -> list[str]:
    """The files the service worker keeps on the device: the page and every asset under web/ but the worker itself."""
    files = sorted(p for p in WEB.rglob("*") if p.is_file() and p.name not in ("sw.js", "docs.html", "docs.js"))
    return ["/", *(f"/web/{p.relative_to(WEB).as_posix()}" for p in files)]


@router.get("/sw.js")
async def service_worker() -> Response:
    """The service worker (web/sw.js) with the page's files and their version filled in; at the root so that it may
    serve the whole page (its scope is /)."""
    import hashlib
    import json

    shell = _shell()
    digest = hashlib.sha256()
    for path in shell[1:]:
        digest.update((WEB / path.removeprefix("/web/")).read_bytes())
    digest.update((WEB / "index.html").read_bytes())
    text = (WEB / "sw.js").read_text().replace("__VERSION__", digest.hexdigest()[:16]).replace("__SHELL__", json.dumps(shell))
    return Response(text, media_type="text/javascript", headers={**HEADERS, "Service-Worker-Allowed": "/"})


@router.get("/manifest.webmanifest")
async def manifest() -> FileResponse:
    """The page as an installable app (a PWA): its name, icons and Quick capture as the start."""
    return FileResponse(WEB / "manifest.webmanifest", media_type="application/manifest+json", headers=HEADERS)


@router.get("/login")
async def login(request: Request, token: str = "") -> Response:
    """A one-time login link (`tessera login`, printed by `make run`): a session cookie for the page, then the page."""
    from services.gateway.edge import SESSION_COOKIE

    g = request.app.state.gateway
    if not secrets.redeem_login_token(g.settings, token, g.settings.gateway.login_ttl_s):
        return HTMLResponse("<!doctype html><title>Tessera: login</title><p>This login link is not valid: it was already used "
                            "or it expired. Run <code>tessera login</code> for a new one, or enter the admin key "
                            "(<code>&lt;data_dir&gt;/secrets/admin-key</code>) on the page.</p>", status_code=403, headers=HEADERS)
    response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    response.set_cookie(SESSION_COOKIE, g.sessions.issue(), max_age=g.sessions.max_age_s, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/")
    return response


@router.post("/api/v1/session", dependencies=AUTH)
async def start_session(request: Request) -> Response:
    """The page exchanges the key a person typed (sent once, as a bearer key) for an HttpOnly, SameSite=Strict session
    cookie naming that key, so the key is not kept in the page. A revoked key or a disabled user ends the session."""
    from services.gateway.edge import SESSION_COOKIE

    g = request.app.state.gateway
    who = principal.current.get()
    response = JSONResponse({"user": who.label, "role": who.role, "projects": list(who.projects) if who.projects is not None else None},
                            headers={"Cache-Control": "no-store"})
    response.set_cookie(SESSION_COOKIE, g.sessions.issue(subject=who.key_id), max_age=g.sessions.max_age_s, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    return response


@router.delete("/api/v1/session", dependencies=AUTH)
async def end_session() -> Response:
    from services.gateway.edge import SESSION_COOKIE

    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/docs")
async def docs() -> Response:
    if not (SWAGGER / "swagger-ui-bundle.js").is_file():
        return HTMLResponse("<!doctype html><title>Tessera API</title><p>Swagger UI is not installed: run <code>make setup</code> "
                            "(npm installs swagger-ui-dist). The API's document is at <a href='/openapi.json'>/openapi.json</a>.</p>",
                            status_code=503)
    return FileResponse(WEB / "docs.html", headers=HEADERS)


def mount_static(app: object) -> None:
    """The app's assets at /web, Swagger UI's at /docs/assets."""
    from fastapi import FastAPI

    assert isinstance(app, FastAPI)
    app.mount("/web", StaticFiles(directory=WEB), name="web")
    if SWAGGER.is_dir():
        app.mount("/docs/assets", StaticFiles(directory=SWAGGER), name="swagger")
