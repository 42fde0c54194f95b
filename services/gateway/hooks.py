"""Signed webhooks: each source's signature check and its payload as a note; no I/O.

- **generic**: JSON ``{title, body, url, tags}``; ``X-Tessera-Timestamp`` (Unix seconds) and ``X-Tessera-Signature:
  sha256=<hex HMAC-SHA256 of "<timestamp>." + body>``.
- **slack**: a slash command or an outgoing message (form fields ``text``, ``user_name``, ``channel_id``,
  ``channel_name``, ``team_domain``, ``timestamp``); Slack's request signing: ``X-Slack-Request-Timestamp`` and
  ``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:" + body>``.
- **github**: ``issues`` and ``issue_comment`` events; ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of body>`` and
  ``X-GitHub-Delivery``. GitHub sends no timestamp: a delivery id is accepted once.

A timestamp more than WINDOW_S from now is refused, and within the window the same signature is accepted once (the
route keeps what it saw), so a captured call cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from services.gateway.schemas import NoteIn
from shared.errors import InvalidArgument
from shared.runtime.hooks import Hook

#: How far a signed timestamp may be from the gateway's clock.
WINDOW_S = 300
#: How long a GitHub delivery id is remembered.
DELIVERY_TTL_S = 7 * 86_400


class Refused(Exception):
    """A call that is not the source's: no signature, a bad one, a stale timestamp, a replay (401)."""


@dataclass(frozen=True)
class Signed:
    """A verified call: what makes it unique (a replay has the same) and how long to remember it."""

    replay_key: str
    remember_s: int


def _hex_after(value: str, prefix: str, header: str) -> str:
    if not value.startswith(prefix):
        raise Refused(f"hooks: {header} is missing or not '{prefix}<hex>'")
    return value[len(prefix):].strip().lower()


def _matches(secrets: Sequence[bytes], message: bytes, given: str) -> bool:
    return any(hmac.compare_digest(hmac.new(s, message, hashlib.sha256).hexdigest(), given) for s in secrets)


def _timestamp(value: str, header: str, now: float) -> str:
    if not value.isdigit() or len(value) > 12:
        raise Refused(f"hooks: {header} is missing or not a Unix time in seconds")
    if abs(now - int(value)) > WINDOW_S:
        raise Refused(f"hooks: {header} is {int(now - int(value))} s from now; at most {WINDOW_S} s (a stale or replayed call)")
    return value


def verify(hook: Hook, secrets: Sequence[bytes], headers: Mapping[str, str], body: bytes, now: float) -> Signed:
    """The call's signature checked against the hook's secrets; Refused with the reason otherwise."""
    if not secrets:
        raise Refused(f"hooks: {hook.name} has no secret; `tessera hooks rotate {hook.name}` makes one")
    if hook.kind == "github":
        given = _hex_after(headers.get("x-hub-signature-256", ""), "sha256=", "X-Hub-Signature-256")
        delivery = headers.get("x-github-delivery", "")
        if not delivery or len(delivery) > 100:
            raise Refused("hooks: X-GitHub-Delivery is missing")
        if not _matches(secrets, body, given):
            raise Refused("hooks: the signature (X-Hub-Signature-256) does not match this hook's secret")
        return Signed(f"delivery:{delivery}", DELIVERY_TTL_S)
    if hook.kind == "slack":
        ts = _timestamp(headers.get("x-slack-request-timestamp", ""), "X-Slack-Request-Timestamp", now)
        given = _hex_after(headers.get("x-slack-signature", ""), "v0=", "X-Slack-Signature")
        message = b"v0:" + ts.encode() + b":" + body
    else:
        ts = _timestamp(headers.get("x-tessera-timestamp", ""), "X-Tessera-Timestamp", now)
        given = _hex_after(headers.get("x-tessera-signature", ""), "sha256=", "X-Tessera-Signature")
        message = ts.encode() + b"." + body
    if not _matches(secrets, message, given):
        raise Refused("hooks: the signature does not match this hook's secret (or the timestamp it signs)")
    return Signed(f"signature:{given}", 2 * WINDOW_S)


def sign_generic(secret: bytes, body: bytes, ts: int) -> dict[str, str]:
    """The headers a generic source sends (for clients and tests): the timestamp and the signature over it and the body."""
    digest = hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Tessera-Timestamp": str(ts), "X-Tessera-Signature": f"sha256={digest}"}


@dataclass(frozen=True)
class Capture:
    """What a verified call becomes: a note, and the file name that makes a repeat of the same source one note ("")."""

    note: NoteIn
    name_key: str = ""


def _note(hook: Hook, title: str, body: str, url: str, tags: Sequence[str]) -> NoteIn:
    try:
        return NoteIn(title=" ".join(title.split())[:300] or "(untitled)", body=body, url=url, project=hook.project, type="note",
                      tags=list(dict.fromkeys([*hook.tags, *tags]))[:50], force=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidArgument(f"hooks: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidArgument("hooks: the body is not JSON") from None


def capture_of(hook: Hook, headers: Mapping[str, str], body: bytes) -> Capture | str:
    """The note a verified call carries, or why it carries none (an event that is not captured); InvalidArgument for a
    payload of the wrong shape."""
    if hook.kind == "generic":
        data = _json(body)
        if (not isinstance(data, dict) or not isinstance(data.get("title"), str) or not isinstance(data.get("body"), str)
                or not data["body"].strip()):
            raise InvalidArgument("hooks: a generic hook takes JSON with a string title and a body that is not empty "
                                  "(url and tags optional)")
        tags = data.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidArgument("hooks: tags must be a list of strings")
        return Capture(_note(hook, data["title"], data["body"], str(data.get("url") or ""), tags))
    if hook.kind == "slack":
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=100).items()}
        text = form.get("text", "").strip()
        if not text:
            return "an empty Slack message"
        team, channel, ts = form.get("team_domain", ""), form.get("channel_id", ""), form.get("timestamp", "")
        url = ""
        if team and channel:
            url = f"https://{team}.slack.com/archives/{channel}" + (f"/p{ts.replace('.', '')}" if ts.replace(".", "").isdigit() else "")
        who = " ".join(x for x in (form.get("user_name", "") and f"{form['user_name']}",
                                   form.get("channel_name", "") and f"in #{form['channel_name']}") if x)
        return Capture(_note(hook, f"Slack: {text.splitlines()[0][:80]}", text + (f"\n\n— {who}" if who else ""), url, ["slack"]))
    event = headers.get("x-github-event", "")
    data = _json(body)
    if event == "ping":
        return "GitHub's ping"
    if event not in ("issues", "issue_comment") or not isinstance(data, dict):
        return f"GitHub event {event[:40]!r} is not captured (issues and issue_comment are)"
    if data.get("action") in ("deleted", "unlabeled", "labeled", "assigned", "unassigned", "locked", "unlocked"):
        return f"a GitHub {event} {data.get('action')} event"
    issue, repo = data.get("issue") or {}, (data.get("repository") or {}).get("full_name", "")
    head = f"{repo}#{issue.get('number', '?')}"
    labels = [str(x.get("name", "")) for x in issue.get("labels") or [] if isinstance(x, dict) and x.get("name")]
    if event == "issues":
        body_text = f"{issue.get('body') or ''}\n\n— opened by {(issue.get('user') or {}).get('login', '?')} ({issue.get('state', '')})"
        return Capture(_note(hook, f"{head}: {issue.get('title', '')}", body_text.strip(), str(issue.get("html_url") or ""),
                             ["github", *labels]), str(issue.get("html_url") or ""))
    comment = data.get("comment") or {}
    body_text = f"{comment.get('body') or ''}\n\n— {(comment.get('user') or {}).get('login', '?')} on {head}: {issue.get('title', '')}"
    return Capture(_note(hook, f"Comment on {head}: {issue.get('title', '')}", body_text.strip(), str(comment.get("html_url") or ""),
                         ["github", *labels]), str(comment.get("html_url") or ""))
