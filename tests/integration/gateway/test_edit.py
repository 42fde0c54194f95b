"""Editing a note for real, against the session mesh: the page's, REST's, the SDK's and the command line's edit rewrites a
captured note's file (its other frontmatter kept) and indexes it again under the same id, so search finds the new text
and not the old; an edit of a note changed since it was opened is refused, as is an imported file (the person's own)
and bad input, each leaving the file as it was; another origin or a missing key edits nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from helpers import ADMIN, ROOT, ServiceProcess, child_env, tessera

from shared.client import Client, StatusError
from shared.runtime.config import Settings


async def found(client: Client, words: str, project: str, present: bool = True) -> list[str]:
    """The documents a lexical search for ``words`` finds in ``project``, once they are (or are no longer) there."""
    end = time.monotonic() + 120
    while True:
        hits = (await client.search(words, project=project, mode="lexical", bypass_cache=True)).hits
        if bool(hits) == present:
            return [h.source.document_id for h in hits]
        assert time.monotonic() < end, f"{words!r} {'never found' if present else 'still found'}"
        await asyncio.sleep(0.3)


async def indexed(http: httpx.AsyncClient, job_id: str) -> None:
    end = time.monotonic() + 120
    while (await http.get(f"/api/v1/jobs/{job_id}")).json()["files"][0]["state"] not in ("embedded", "unchanged"):
        assert time.monotonic() < end, "the edit was never indexed"
        await asyncio.sleep(0.3)


async def test_an_edit_rewrites_the_note_and_its_index(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    project = f"edit-{uuid.uuid4().hex[:6]}"
    gw = f"http://127.0.0.1:{infra.gateway_port}"
    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=120) as http, Client(infra) as client:
        made = await http.post("/api/v1/notes", json={"title": "Sourdough starter", "body": "Feed the starter with rye flour daily.",
                                                      "project": project, "tags": ["bread"]})
        assert made.status_code == 201, made.text
        doc_id, path = made.json()["document_id"], Path(made.json()["path"])
        assert await found(client, "rye flour", project) == [doc_id]
        opened = (await http.get(f"/api/v1/documents/{doc_id}")).json()
        assert (await http.get(f"/api/v1/documents/{doc_id}/view")).json()["editable"] is True
        original = path.read_text()

        # refusals leave the file as it was: no key, another origin, nothing to change, an unknown field, an unknown note
        for extra, body, status in (({"Authorization": ""}, {"title": "x"}, 401), ({"Origin": "http://attacker.example"}, {"title": "x"}, 403),
                                    ({}, {}, 422), ({}, {"title": "x", "project": "elsewhere"}, 422), ({}, {"body": ""}, 422),
                                    ({}, {"title": "x", "content_hash": "not-a-hash"}, 422)):
            r = await http.patch(f"/api/v1/documents/{doc_id}", json=body, headers=extra)
            assert r.status_code == status, (body, r.text)
            assert status < 400 or "message" in r.json()["error"]
        missing = await http.patch("/api/v1/documents/00000000-0000-4000-8000-000000000000", json={"title": "x"})
        assert missing.status_code == 404 and "no document" in missing.json()["error"]["message"]
        assert path.read_text() == original

        edit = await http.patch(f"/api/v1/documents/{doc_id}", json={"title": "Sourdough levain", "tags": ["bread", "baking"],
                                                                      "body": "Feed the levain with spelt flour twice a day.",
                                                                      "content_hash": opened["content_hash"]})
        assert edit.status_code == 200, edit.text
        assert edit.json()["document_id"] == doc_id and edit.json()["path"] == str(path)
        await indexed(http, edit.json()["job_id"])
        text = path.read_text()
        assert "title: Sourdough levain" in text and "- baking" in text and "# Sourdough levain\n\nFeed the levain with spelt" in text
        assert "created: " in text and "updated: " in text and f"project: {project}" in text  # the rest of the frontmatter stays
        assert await found(client, "spelt flour", project) == [doc_id]
        assert await found(client, "rye", project, present=False) == []
        now = (await http.get(f"/api/v1/documents/{doc_id}")).json()
        assert now["title"] == "Sourdough levain" and set(now["tags"]) >= {"bread", "baking"} and now["content_hash"] == edit.json()["content_hash"]

        # the hash the first edit was made against is stale now: a second editor who opened it then is refused
        stale = await http.patch(f"/api/v1/documents/{doc_id}", json={"title": "Lost update", "content_hash": opened["content_hash"]})
        assert stale.status_code == 409 and "changed since it was opened" in stale.json()["error"]["message"]
        assert "Lost update" not in path.read_text()

        # the SDK (gRPC to the gateway) edits too, and refuses the same way
        with pytest.raises(StatusError) as refused:
            await client.edit_note(doc_id, title="Lost update", content_hash=opened["content_hash"])
        assert refused.value.code == "FAILED_PRECONDITION"
        with pytest.raises(StatusError) as empty:
            await client.edit_note(doc_id)
        assert empty.value.code == "INVALID_ARGUMENT" and "at least one of" in empty.value.message
        typed = await client.edit_note(doc_id, type="howto")
        assert typed.document_id == doc_id and "type: howto" in path.read_text()

    # the command line: fields, and the body in $EDITOR (refused if the note changed meanwhile)
    changed = tessera(infra, "edit", doc_id, "--no-tags", "--title", "Levain")
    assert changed.returncode == 0 and "edited" in changed.stdout, changed.stdout + changed.stderr
    assert "tags: []" in path.read_text() and "title: Levain" in path.read_text()
    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=120) as http:
        await indexed(http, changed.stdout.split("(job ")[1].split(")")[0])
    env = {**child_env(infra), "EDITOR": "sed -i s/spelt/einkorn/", "VISUAL": ""}
    run = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "shared.cli", "edit", doc_id, "--editor"], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert run.returncode == 0 and "edited" in run.stdout, run.stdout + run.stderr
    assert "with einkorn flour" in path.read_text() and "title: Levain" in path.read_text()
    nothing = tessera(infra, "edit", doc_id)
    assert nothing.returncode != 0 and "say what changes" in nothing.stdout + nothing.stderr

    # an imported file is the person's: refused with where to edit it, the file untouched
    folder = tmp_path / "imported"
    folder.mkdir()
    (folder / "rye.md").write_text("# Rye bread\n\nRye dough stays sticky.\n")
    async with Client(infra) as client, httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=120) as http:
        imported = (await client.ingest(folder, project=project)).files[0].document_id
        assert (await http.get(f"/api/v1/documents/{imported}/view")).json()["editable"] is False
        r = await http.patch(f"/api/v1/documents/{imported}", json={"title": "Changed"})
        assert r.status_code == 409 and "imported from your files" in r.json()["error"]["message"], r.text
    assert (folder / "rye.md").read_text() == "# Rye bread\n\nRye dough stays sticky.\n"
