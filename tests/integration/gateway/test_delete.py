"""Deleting a note for real, against the session mesh: it leaves search (cached results included), its document and its
captured file go, a stored answer that cited it keeps the number marked deleted; an imported file stays where it is;
the command line deletes too; another origin or a missing key deletes nothing."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
from helpers import ADMIN, ServiceProcess, tessera
from psycopg_pool import AsyncConnectionPool

from services.chat.store import ChatStore, NewTurn
from shared.client import Client
from shared.runtime.config import Settings


async def searchable(client: Client, words: str, project: str) -> None:
    end = time.monotonic() + 120
    while not (await client.search(words, project=project, mode="vector", bypass_cache=True)).hits:
        assert time.monotonic() < end, "the note was never embedded"
        await asyncio.sleep(0.3)


async def test_delete_reaches_search_the_file_and_citations(infra: Settings, mesh: dict[str, ServiceProcess], pool: AsyncConnectionPool,
                                                            tmp_path: Path) -> None:
    project = f"delete-{uuid.uuid4().hex[:6]}"
    words = "quince jelly sets at 104 degrees"
    gw = f"http://127.0.0.1:{infra.gateway_port}"
    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=120) as http, Client(infra) as client:
        made = await http.post("/api/v1/notes", json={"title": "Quince jelly", "body": f"The {words} on a sugar thermometer.",
                                                      "project": project})
        assert made.status_code == 201, made.text
        doc_id, path = made.json()["document_id"], Path(made.json()["path"])
        await searchable(client, words, project)
        cached = await http.post("/api/v1/search", json={"query": words, "filters": {"project": project}})
        assert [h["document_id"] for h in cached.json()["hits"]] == [doc_id]
        # an answer that cited it, stored as chat stores one
        store, conversation = ChatStore(pool, "test-delete"), str(uuid.uuid4())
        await store.store_question(NewTurn(conversation, True, "When does quince jelly set?", "When does quince jelly set?", 10), answer := str(uuid.uuid4()))
        await store.store_answer(conversation, answer, "At 104 degrees [1].", [{"number": 1, "document_id": doc_id, "chunk_id": str(uuid.uuid4()),
                                                                              "title": "Quince jelly", "path": str(path), "line_start": 7,
                                                                              "line_end": 7, "score": 0.9, "origin": "model"}], "stop", 5)

        # another origin, or no key: nothing deleted
        for extra, status in (({"Origin": "http://attacker.example"}, 403), ({"Authorization": ""}, 401)):
            assert (await http.delete(f"/api/v1/documents/{doc_id}", headers=extra)).status_code == status
        assert (await http.get(f"/api/v1/documents/{doc_id}")).status_code == 200

        gone = await http.delete(f"/api/v1/documents/{doc_id}")
        assert gone.status_code == 200 and gone.json() == {"deleted": doc_id, "file_removed": True}, gone.text
        assert not path.exists()  # a capture's file goes with it
        assert (await http.get(f"/api/v1/documents/{doc_id}")).status_code == 404
        again = await http.post("/api/v1/search", json={"query": words, "filters": {"project": project}})
        assert again.json()["hits"] == [], "a cached result still names the deleted note"
        end = time.monotonic() + 10
        while True:
            cited = (await http.get(f"/api/v1/conversations/{conversation}")).json()["messages"][1]["citations"][0]
            if cited["title"] == "(deleted note)" or time.monotonic() > end:
                break
            await asyncio.sleep(0.2)
        assert cited["number"] == 1 and cited["title"] == "(deleted note)" and cited["path"] == "", cited
        missing = await http.delete(f"/api/v1/documents/{doc_id}")
        assert missing.status_code == 404 and "no document" in missing.json()["error"]["message"]

    # an imported file is the user's: the document goes, the file stays; the command line deletes too
    folder = tmp_path / "imported"
    folder.mkdir()
    (folder / "plum.md").write_text("# Plum jam\n\nPlum jam needs no added pectin.\n")
    async with Client(infra) as client:
        job = await client.ingest(folder, project=project)
        imported = job.files[0].document_id
    done = tessera(infra, "delete", imported)
    assert done.returncode == 0 and "its file stays" in done.stdout, done.stdout + done.stderr
    assert (folder / "plum.md").exists()
    assert tessera(infra, "delete", imported).returncode == 1
