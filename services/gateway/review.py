"""The weekly review: search writes the digest, the gateway saves it as a note of type ``review`` (searchable like
any note). On schedule each gateway's timer (calendar.py) publishes a NATS request; the gateways share one queue group,
so one instance takes it, and search's claim on the run's key stops a second timer's request from writing another."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from services.gateway.schemas import NoteIn
from services.gateway.upstream import Mesh
from shared.contracts import REVIEW_QUEUE, REVIEW_SUBJECT, REVIEW_TYPE
from shared.errors import StatusError
from shared.gen.tessera.v1 import search_pb2
from shared.runtime import bus

log = logging.getLogger("tessera.gateway.review")


async def write_review(mesh: Mesh, since_days: float, project: str, *, save: bool, claim: str = "") -> tuple[search_pb2.ReviewResponse, Path | None, str]:
    """(the review, where it was saved or None, its document id or '')."""
    review = await mesh.client.review(since_days=since_days, project=project, claim=claim)
    if not save or (claim and not review.claimed):
        return review, None, ""
    today = dt.datetime.now(dt.UTC).date()
    name = f"{today:%Y-%m-%d}-weekly-review{'-' + project if project else ''}.md"
    note = NoteIn(title=review.title, body=review.markdown, project=project, type=REVIEW_TYPE, tags=["review"], force=True, url="")
    path, reply = await mesh.capture(note, name=name)
    return review, path, reply.file.document_id


async def serve_requests(nc: Any, mesh: Mesh) -> Any:
    """Answer the timers' review requests (one gateway of the queue group takes each)."""
    async def handle(msg: Any) -> None:
        bus.adopt_request_id(msg)
        try:
            body = json.loads(msg.data or b"{}")
            key = str(body.get("key") or "")
            review, path, doc = await write_review(mesh, float(body.get("since_days") or 7.0), str(body.get("project") or ""), save=True,
                                                   claim=key)
            reply = {"key": key, "claimed": review.claimed, "path": str(path or ""), "document_id": doc}
            log.info("weekly review %s", "written" if path else "already written by another instance", extra=reply)
        except (StatusError, ValueError) as exc:
            reply = {"error": str(exc)}
            log.warning("weekly review failed: %s", exc)
        if msg.reply:
            with contextlib.suppress(Exception):
                await msg.respond(json.dumps(reply).encode())

    async def spawn(msg: Any) -> None:  # the review takes seconds: never hold up the subscription
        task = asyncio.create_task(handle(msg))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    tasks: set[asyncio.Task[None]] = set()
    return await nc.subscribe(REVIEW_SUBJECT, queue=REVIEW_QUEUE, cb=spawn)
