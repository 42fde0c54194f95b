"""Signed webhooks: ``POST /api/v1/hooks/{name}`` for the sources `tessera hooks add` configured (generic JSON, Slack,
GitHub). No API key: the source's HMAC signature is the credential (services/gateway/hooks.py). A verified call is
answered at once and captured in the background, through the same path as ``POST /api/v1/notes`` (the notes folder,
ingest's limits, dedup and enrichment, the hook's project). A call without a valid signature, with a stale timestamp or
replayed is refused (401) before anything is read from it or stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from services.gateway import convert
from services.gateway.deps import Gateway, gateway
from services.gateway.hooks import Capture, Refused, capture_of, verify
from services.gateway.schemas import ErrorOut
from shared.errors import InvalidArgument, NotFound, StatusError
from shared.runtime import hooks as registry

log = logging.getLogger("tessera.gateway.hooks")
router = APIRouter(tags=["hooks"])
PREFIX = "/api/v1/hooks/"
#: The largest webhook body read (GitHub's are up to 25 MB; an issue's text is far less).
MAX_HOOK_BYTES = 1 << 20


class Seen:
    """Calls already accepted (their replay keys): in the shared cache, so every gateway instance knows them, else here."""

    def __init__(self) -> None:
        self.local: dict[str, float] = {}

    async def first(self, g: Gateway, key: str, ttl_s: int) -> bool:
        shared = await g.limiter.cache.count(f"hook:{key}", ttl_s) if g.limiter.cache is not None else None
        now = time.monotonic()
        if len(self.local) > 10_000:
            self.local = {k: t for k, t in self.local.items() if t > now}
        local_first = self.local.get(key, 0) <= now
        self.local[key] = now + ttl_s
        return shared == 1 if shared is not None else local_first


SEEN = Seen()
TASKS: set[asyncio.Task[None]] = set()


def _refused(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(convert.error_body(status, message, code), status_code=status)


async def _capture(g: Gateway, hook: str, capture: Capture) -> None:
    name = f"{capture.note.project or 'inbox'}-{hashlib.sha256(capture.name_key.encode()).hexdigest()[:24]}.md" if capture.name_key else ""
    try:
        path, reply = await g.mesh.capture(capture.note, name=name)
        log.info("hooks: %s captured %s%s", hook, path, " (a repeat: not stored)" if reply.duplicate else "")
    except StatusError as exc:
        log.error("hooks: %s: the note was not captured: %s", hook, exc.message)


@router.post(PREFIX + "{name}", status_code=202, responses={401: {"model": ErrorOut, "description": "Unsigned, a bad signature, "
                                                                  "a stale timestamp or a replay: nothing was stored"}})
async def receive(request: Request, name: str = Path(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$"),
                  g: Gateway = Depends(gateway)) -> JSONResponse:
    """A call from a configured source. 202 (Slack: 200 with a message for the channel) once its signature checks; the
    note is made in the background."""
    hook = (await asyncio.to_thread(registry.load, g.settings)).get(name)
    if hook is None:
        raise NotFound(f"hooks: no hook named {name!r}; `tessera hooks add {name} --kind generic|slack|github` makes one")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_HOOK_BYTES:
            return _refused(413, f"hooks: the body is over {MAX_HOOK_BYTES} bytes", "payload_too_large")
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        signed = verify(hook, await asyncio.to_thread(registry.secrets_of, g.settings, hook), headers, bytes(body), time.time())
    except Refused as exc:
        return _refused(401, str(exc), "invalid_signature")
    if not await SEEN.first(g, f"{name}:{signed.replay_key}", signed.remember_s):
        return _refused(401, "hooks: this call was accepted before (a replay); nothing was stored", "replayed")
    try:
        capture = capture_of(hook, headers, bytes(body))
    except InvalidArgument as exc:
        return _refused(400, exc.message, "invalid_request")
    if isinstance(capture, str):
        return JSONResponse({"accepted": False, "ignored": capture}, status_code=200)
    task = asyncio.create_task(_capture(g, name, capture))
    TASKS.add(task)
    task.add_done_callback(TASKS.discard)
    out: dict[str, Any] = {"accepted": True, "title": capture.note.title, "project": capture.note.project}
    if hook.kind == "slack":  # shown to the person who sent it
        return JSONResponse({"response_type": "ephemeral", "text": f"Saving to Tessera: {capture.note.title}"}, status_code=200)
    return JSONResponse(out, status_code=202)
