"""Webhook signatures and payloads (services/gateway/hooks.py, shared/runtime/hooks.py): each source's signed call is
accepted and becomes a note with its source URL; an unsigned call, a bad signature, a stale timestamp and a call signed
with another secret are refused with the reason; a rotated-out secret verifies for an hour only."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from helpers import make_settings

from services.gateway.hooks import WINDOW_S, Capture, Refused, capture_of, sign_generic, verify
from shared.errors import InvalidArgument
from shared.runtime import hooks
from shared.runtime.hooks import Hook

SECRET = b"a-secret-of-sixteen-or-more"
NOW = 1_800_000_000.0


def slack_headers(body: bytes, ts: int, secret: bytes = SECRET) -> dict[str, str]:
    digest = hmac.new(secret, f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": str(ts), "x-slack-signature": f"v0={digest}"}


def github_headers(body: bytes, event: str, delivery: str = "d-1", secret: bytes = SECRET) -> dict[str, str]:
    return {"x-hub-signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest(), "x-github-event": event,
            "x-github-delivery": delivery}


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_generic_signed_now_is_a_note_and_anything_else_is_refused() -> None:
    hook = Hook("inbox", "generic", "hooked", ["web"])
    body = json.dumps({"title": "Deploy notes", "body": "Roll back with make rollback.", "url": "https://ci.example/run/7",
                       "tags": ["ops"]}).encode()
    signed = verify(hook, [SECRET], lower(sign_generic(SECRET, body, int(NOW))), body, NOW)
    assert signed.replay_key.startswith("signature:") and signed.remember_s == 2 * WINDOW_S
    capture = capture_of(hook, {}, body)
    assert isinstance(capture, Capture)
    assert capture.note.url == "https://ci.example/run/7" and capture.note.project == "hooked" and capture.note.tags == ["web", "ops"]
    for headers, why in ((sign_generic(b"another-secret-entirely", body, int(NOW)), "does not match"),
                         (sign_generic(SECRET, body, int(NOW) - WINDOW_S - 1), "stale or replayed"),
                         (sign_generic(SECRET, body, int(NOW) + WINDOW_S + 1), "stale or replayed"),
                         ({}, "missing"), ({"X-Tessera-Timestamp": str(int(NOW))}, "missing")):
        with pytest.raises(Refused, match=why):
            verify(hook, [SECRET], lower(headers), body, NOW)
    with pytest.raises(Refused, match="does not match"):  # the body changed after it was signed
        verify(hook, [SECRET], lower(sign_generic(SECRET, body, int(NOW))), body + b" ", NOW)
    with pytest.raises(Refused, match="has no secret"):
        verify(hook, [], lower(sign_generic(SECRET, body, int(NOW))), body, NOW)
    for bad in (b"not json", b'{"title": "x"}', b'{"title": "x", "body": "  "}', b'{"title": "x", "body": "y", "tags": "ops"}',
                b'{"title": "x", "body": "y", "url": "javascript:alert(1)"}'):
        with pytest.raises(InvalidArgument):
            capture_of(hook, {}, bad)


def test_slack_signing_and_its_message_with_a_permalink() -> None:
    hook = Hook("team", "slack", "chat")
    body = urlencode({"text": "The staging DB moves to db-2 on Friday\nsecond line", "user_name": "ana", "channel_id": "C024BE91L",
                      "channel_name": "ops", "team_domain": "acme", "timestamp": "1700000000.000200"}).encode()
    verify(hook, [SECRET], slack_headers(body, int(NOW)), body, NOW)
    with pytest.raises(Refused, match="stale"):
        verify(hook, [SECRET], slack_headers(body, int(NOW) - 3600), body, NOW)
    with pytest.raises(Refused, match="does not match"):
        verify(hook, [SECRET], slack_headers(body, int(NOW), b"not-the-signing-secret"), body, NOW)
    capture = capture_of(hook, {}, body)
    assert isinstance(capture, Capture)
    assert capture.note.url == "https://acme.slack.com/archives/C024BE91L/p1700000000000200"
    assert capture.note.title == "Slack: The staging DB moves to db-2 on Friday" and "— ana in #ops" in capture.note.body
    assert "slack" in capture.note.tags
    assert capture_of(hook, {}, urlencode({"text": " "}).encode()) == "an empty Slack message"


def test_github_issues_and_comments_once_per_delivery() -> None:
    hook = Hook("repo", "github", "code")
    issue = {"number": 42, "title": "Crash on empty PDF", "body": "Steps: ingest an empty PDF.", "state": "open",
             "html_url": "https://github.com/acme/tessera/issues/42", "user": {"login": "bo"}, "labels": [{"name": "bug"}]}
    opened = json.dumps({"action": "opened", "issue": issue, "repository": {"full_name": "acme/tessera"}}).encode()
    signed = verify(hook, [SECRET], github_headers(opened, "issues"), opened, NOW)
    assert signed.replay_key == "delivery:d-1"
    capture = capture_of(hook, github_headers(opened, "issues"), opened)
    assert isinstance(capture, Capture) and capture.note.url == issue["html_url"] and capture.name_key == issue["html_url"]
    assert capture.note.title == "acme/tessera#42: Crash on empty PDF" and set(capture.note.tags) == {"github", "bug"}
    comment = json.dumps({"action": "created", "issue": issue, "repository": {"full_name": "acme/tessera"},
                          "comment": {"body": "Fixed in 1.2", "html_url": issue["html_url"] + "#issuecomment-1",
                                      "user": {"login": "cy"}}}).encode()
    said = capture_of(hook, github_headers(comment, "issue_comment"), comment)
    assert isinstance(said, Capture) and said.note.url.endswith("#issuecomment-1") and "— cy on acme/tessera#42" in said.note.body
    assert capture_of(hook, github_headers(b"{}", "ping"), b"{}") == "GitHub's ping"
    assert "not captured" in str(capture_of(hook, github_headers(b"{}", "push"), b"{}"))
    with pytest.raises(Refused, match="does not match"):
        verify(hook, [SECRET], github_headers(opened, "issues", secret=b"someone-elses-secret"), opened, NOW)
    with pytest.raises(Refused, match="Delivery is missing"):
        verify(hook, [SECRET], {k: v for k, v in github_headers(opened, "issues").items() if k != "x-github-delivery"}, opened, NOW)


def test_the_registry_keeps_secrets_private_and_rotates_with_a_grace(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    hook, path = hooks.add(settings, "ci", "generic", "ops", ["ci"])
    assert oct(path.stat().st_mode & 0o777) == "0o600" and oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert oct((path.parent.parent / "hooks.json").stat().st_mode & 0o777) == "0o600"
    first = path.read_bytes().strip()
    assert first not in (path.parent.parent / "hooks.json").read_bytes()  # the list holds no secret
    assert hooks.secrets_of(settings, hook) == [first]
    with pytest.raises(InvalidArgument, match="exists"):
        hooks.add(settings, "ci", "generic")
    with pytest.raises(InvalidArgument, match="not a hook name"):
        hooks.add(settings, "../x", "generic")
    with pytest.raises(InvalidArgument, match="kind"):
        hooks.add(settings, "x", "smtp")
    rotated, _ = hooks.rotate(settings, "ci")
    second = path.read_bytes().strip()
    assert second != first and hooks.secrets_of(settings, rotated) == [second, first]  # the old one, within the hour
    rotated.rotated_at = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=hooks.ROTATE_GRACE_S + 1)).isoformat()
    assert hooks.secrets_of(settings, rotated) == [second]
    hooks.remove(settings, "ci")
    assert hooks.load(settings) == {} and not path.exists()
