"""Signed webhooks against the session mesh: a valid generic, Slack and GitHub call each becomes a note with its source
URL; a bad signature, a stale timestamp, a replay and a call to a removed hook are refused (401 or 404) and store
nothing; `tessera hooks` never prints a secret."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
from helpers import ServiceProcess, tessera

from services.gateway.hooks import sign_generic
from shared.client import Client
from shared.runtime import hooks
from shared.runtime.config import Settings


async def notes_of(client: Client, project: str, want: int, settle_s: float = 0.0) -> list[str]:
    """The paths of the project's documents once there are ``want`` (and still, after ``settle_s``)."""
    end = time.monotonic() + 120
    while len(docs := (await client.documents(project=project, limit=50)).documents) < want:
        assert time.monotonic() < end, f"{len(docs)} notes in {project}, not {want}"
        await asyncio.sleep(0.3)
    await asyncio.sleep(settle_s)
    return sorted(d.path for d in (await client.documents(project=project, limit=50)).documents)


async def test_each_source_signed_becomes_a_note_and_nothing_else_does(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    run = uuid.uuid4().hex[:6]
    project = f"hooks-{run}"
    made = {}
    for kind in hooks.KINDS:
        out = tessera(infra, "hooks", "add", f"{kind}-{run}", "--kind", kind, "--project", project, "--tag", "hooked")
        assert out.returncode == 0, out.stdout + out.stderr
        secret = hooks.secret_path(infra, f"{kind}-{run}").read_text().strip()
        assert secret not in out.stdout + out.stderr  # said where, never shown
        made[kind] = secret.encode()
    listed = tessera(infra, "hooks", "list", "--json")
    assert {h["name"] for h in json.loads(listed.stdout)} >= {f"{k}-{run}" for k in hooks.KINDS}
    assert not any(s.decode() in listed.stdout for s in made.values())
    gw = f"http://127.0.0.1:{infra.gateway_port}/api/v1/hooks"
    now = int(time.time())

    generic = json.dumps({"title": f"Release checklist {run}", "body": "Tag, build, publish the wheels.",
                          "url": "https://ci.example/releases/12", "tags": ["release"]}).encode()
    slack = urlencode({"text": f"Standup {run}: the search latency fix is merged", "user_name": "ana", "channel_id": "C1",
                       "channel_name": "dev", "team_domain": "acme", "timestamp": f"{now}.000100"}).encode()
    issue = {"number": 7, "title": f"Upload stalls {run}", "body": "At 60 % the upload stops.", "state": "open",
             "html_url": f"https://github.com/acme/tessera/issues/7{run}", "user": {"login": "bo"}, "labels": [{"name": "bug"}]}
    github = json.dumps({"action": "opened", "issue": issue, "repository": {"full_name": "acme/tessera"}}).encode()
    slack_sig = "v0=" + hmac.new(made["slack"], f"v0:{now}:".encode() + slack, hashlib.sha256).hexdigest()
    calls = {
        "generic": (generic, {"Content-Type": "application/json", **sign_generic(made["generic"], generic, now)}),
        "slack": (slack, {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(now),
                          "X-Slack-Signature": slack_sig}),
        "github": (github, {"Content-Type": "application/json", "X-GitHub-Event": "issues", "X-GitHub-Delivery": str(uuid.uuid4()),
                            "X-Hub-Signature-256": "sha256=" + hmac.new(made["github"], github, hashlib.sha256).hexdigest()}),
    }
    async with httpx.AsyncClient(timeout=30) as http, Client(infra) as client:
        # refused, each before anything is stored: no signature, a bad one, a stale timestamp, another hook's secret
        stale = sign_generic(made["generic"], generic, now - 3600)
        for name, body, headers, words in (
                (f"generic-{run}", generic, {}, "missing"),
                (f"generic-{run}", generic, {**calls["generic"][1], "X-Tessera-Signature": "sha256=" + "0" * 64}, "does not match"),
                (f"generic-{run}", generic, stale, "stale or replayed"),
                (f"slack-{run}", slack, {**calls["slack"][1], "X-Slack-Request-Timestamp": str(now - 3600)}, "stale"),
                (f"github-{run}", github, {**calls["github"][1], "X-Hub-Signature-256": "sha256=" + "1" * 64}, "does not match"),
                (f"github-{run}", github, {**calls["github"][1], "X-Hub-Signature-256": calls["generic"][1]["X-Tessera-Signature"]},
                 "does not match")):
            r = await http.post(f"{gw}/{name}", content=body, headers=headers)
            assert r.status_code == 401 and words in r.json()["error"]["message"], (name, words, r.text)
        assert (await http.post(f"{gw}/nobody-{run}", content=generic, headers=calls["generic"][1])).status_code == 404

        for kind, (body, headers) in calls.items():
            r = await http.post(f"{gw}/{kind}-{run}", content=body, headers=headers)
            assert r.status_code == (200 if kind == "slack" else 202), r.text
            again = await http.post(f"{gw}/{kind}-{run}", content=body, headers=headers)  # the same call, replayed
            assert again.status_code == 401 and "replay" in again.json()["error"]["message"], again.text
        paths = await notes_of(client, project, 3, settle_s=1.0)
        assert len(paths) == 3, paths  # one each: nothing from the refused or replayed calls
    texts = {Path(p).read_text() for p in paths}
    for url in ("https://ci.example/releases/12", f"https://acme.slack.com/archives/C1/p{now}000100", issue["html_url"]):
        assert any(f"url: {url}" in t for t in texts), (url, texts)
    assert all("hooked" in t for t in texts)

    removed = tessera(infra, "hooks", "remove", f"generic-{run}")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    async with httpx.AsyncClient(timeout=30) as http:
        fresh = sign_generic(made["generic"], generic, int(time.time()))
        assert (await http.post(f"{gw}/generic-{run}", content=generic, headers=fresh)).status_code == 404
