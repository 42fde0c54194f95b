"""Snapshots through the command line, on a mesh of its own under pm2 (as `make run` starts it): notes ingested and a
conversation held, a snapshot made, the mesh stopped and its data directory wiped, the snapshot restored, and the same
search results, documents and conversation come back. A snapshot killed while being made is never listed as good; a
damaged or cut one is refused with its reason."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from helpers import ROOT, admin_headers, child_env, make_settings, tessera

from shared.client import Client
from shared.ops import snapshot
from shared.runtime import secrets
from shared.runtime.config import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.tier2]  # CI runs it in its second tier (make test-tier2): minutes of pm2 meshes

NOTES = json.loads((ROOT / "tests" / "data" / "enrich" / "notes.json").read_text())[:16]


def queries() -> list[str]:
    """50 queries: each note's title, and word pairs and triples from its text."""
    out = []
    for note in NOTES:
        words = [w.strip(".,:;()") for w in note["text"].split() if len(w) > 4]
        out += [note["title"], " ".join(words[:2]), " ".join(words[3:6])]
    return out[:50]


async def state(settings: Settings, conversation_id: str) -> dict[str, Any]:
    """What a restore must give back: each query's top 10, the documents, the conversation."""
    async with Client(settings) as client:
        results = []
        for q in queries():
            reply = await client.search(q, top_k=10, bypass_cache=True)
            results.append([(h.source.document_id, h.source.chunk_id) for h in reply.hits])
        docs = await client.documents(limit=500)
        conv = await client.conversation(conversation_id)
    return {"results": results,
            "documents": sorted((d.document_id, d.path, d.title, d.content_hash, d.chunks) for d in docs.documents),
            "conversation": (conv.title, [(m.role, m.content, [c.source.chunk_id for c in m.citations]) for m in conv.messages])}


async def fill(settings: Settings) -> str:
    folder = settings.path("imports", "notes")
    folder.mkdir(parents=True, exist_ok=True)
    for i, note in enumerate(NOTES):
        (folder / f"{i:02d}.md").write_text(f"---\ntitle: {note['title']}\ntags: [{', '.join(note['tags'])}]\n---\n# {note['title']}\n\n{note['text']}\n")
    async with Client(settings) as client:
        job = await client.ingest(folder, project="snap")
        assert job.done and job.counts.embedded == len(NOTES), job.counts
        answer = await client.ask(f"What do my notes say about {NOTES[0]['title'].lower()}?", max_tokens=32)
        assert answer.done is not None
        return answer.done.conversation_id


def kill_while_creating(settings: Settings, into: Path) -> Path:
    """Start `tessera snapshot create`, kill it once its partial folder exists; the partial folder's path."""
    for _ in range(5):
        before = set(into.iterdir()) if into.exists() else set()
        proc = subprocess.Popen([sys.executable, "-m", "shared.cli", "snapshot", "create", "--dir", str(into)], cwd=ROOT,
                                env=child_env(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        partial = None
        while proc.poll() is None and partial is None:
            partial = next((p for p in (set(into.iterdir()) if into.exists() else set()) - before if p.name.endswith(snapshot.PARTIAL)), None)
            time.sleep(0.005)
        if partial is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if partial.exists():
                return partial
        else:  # it finished before it could be caught: its snapshot is a good one; try again
            proc.wait()
    raise AssertionError("`snapshot create` finished each time before it could be killed")


def test_snapshot_restore_gives_back_the_same_knowledge_base(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", TESSERA_LOG_LEVEL="info", TESSERA_SNAPSHOT_EVERY="1h", TESSERA_SNAPSHOT_KEEP="2")
    into = tmp_path / "snapshots"
    try:
        up = tessera(settings, "up", "--timeout", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        # the schedule: ingest makes the first one soon after it starts, and the status page shows it
        end = time.monotonic() + 90
        while not snapshot.listed(settings):
            assert time.monotonic() < end, "no scheduled snapshot within 90 s of the start"
            time.sleep(1)
        shown = httpx.get(f"http://127.0.0.1:{settings.gateway_port}/api/v1/status", headers=admin_headers(settings), timeout=60).json()
        assert shown["snapshots"]["last"]["name"] == snapshot.listed(settings)[0]["name"] and shown["snapshots"]["every"] == "1h"
        conversation = asyncio.run(fill(settings))
        before = asyncio.run(state(settings, conversation))
        assert sum(bool(r) for r in before["results"]) >= 45 and len(before["documents"]) == len(NOTES)
        old_admin_key = secrets.read(settings, "admin-key")

        made = tessera(settings, "snapshot", "create", "--dir", str(into))
        assert made.returncode == 0, made.stdout + made.stderr
        path = Path(made.stdout.strip().splitlines()[-1])
        assert path.is_dir() and oct(path.stat().st_mode & 0o777) == "0o700"
        assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in path.iterdir())
        manifest = json.loads((path / snapshot.MANIFEST).read_text())
        assert manifest["counts"]["documents"] == len(NOTES) and manifest["counts"]["chunk_vectors"] >= len(NOTES)
        for secret in secrets.folder(settings).iterdir():  # no credential inside a snapshot
            if secret.is_file():
                value = secret.read_bytes().strip()
                assert all(value not in f.read_bytes() for f in path.iterdir()), secret.name

        # a snapshot killed while being made is never listed, verified or restored
        partial = kill_while_creating(settings, into)
        listed = tessera(settings, "snapshot", "list", "--dir", str(into), "--json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        good = {s["path"] for s in json.loads(listed.stdout)}
        assert str(path) in good and str(partial) not in good and all(not Path(p).name.startswith(".") for p in good), good
        refused = tessera(settings, "snapshot", "verify", str(partial))
        assert refused.returncode == 1 and "incomplete" in refused.stdout, refused.stdout
        # a damaged copy and a cut one are refused with the reason
        for how, change, words in (("damaged", lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "sha256"),
                                   ("cut", lambda b: b[: len(b) // 2], "bytes")):
            copy = tmp_path / how
            shutil.copytree(path, copy)
            dump = copy / snapshot.DUMP
            dump.write_bytes(change(dump.read_bytes()))
            bad = tessera(settings, "snapshot", "restore", str(copy))
            assert bad.returncode == 1 and words in bad.stdout, bad.stdout + bad.stderr
        assert tessera(settings, "snapshot", "verify", str(path)).returncode == 0

        down = tessera(settings, "down", timeout=180)
        assert down.returncode == 0, down.stdout + down.stderr
        shutil.rmtree(settings.path())

        restored = tessera(settings, "snapshot", "restore", str(path), timeout=600)
        assert restored.returncode == 0 and f"{len(NOTES)} documents" in restored.stdout, restored.stdout + restored.stderr
        assert secrets.read(settings, "admin-key") != old_admin_key  # new credentials, made by the restore's setup
        up = tessera(settings, "up", "--timeout", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        after = asyncio.run(state(settings, conversation))
        assert after["documents"] == before["documents"]
        assert after["conversation"] == before["conversation"]
        same = sum(a == b for a, b in zip(after["results"], before["results"], strict=True))
        assert same == len(before["results"]), f"{same} of {len(before['results'])} queries gave the same top 10"
        # the notes' files came back, so a document still reads
        assert (settings.path("imports", "notes") / "00.md").read_text().startswith("---\ntitle:")

        # a snapshot of an older schema (this one without migrations 0009 to 0012) gets the migrations it lacks on restore
        with psycopg.connect(secrets.database_url(settings, "owner"), autocommit=True) as conn:
            for table in ("documents", "chunks", "postings", "chunk_vectors", "query_log", "clusters", "cluster_runs", "term_stats",
                          "lexical_stats", "lexical_weights", "ingest_jobs", "conversations", "messages"):
                conn.execute(f"DROP POLICY scope ON {table}")
                conn.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY")
            conn.execute("ALTER TABLE conversations DROP COLUMN owner")
            conn.execute("ALTER TABLE ingest_jobs DROP COLUMN owner")
            conn.execute("DROP TABLE audit_log, api_keys, users")
            conn.execute("DROP FUNCTION tessera_every_project, tessera_projects, tessera_every_owner, tessera_principal, "
                         "tessera_audit_append_only")
            conn.execute("ALTER TABLE conversations DROP COLUMN purpose")
            conn.execute("ALTER TABLE messages DROP COLUMN sentences")
            conn.execute("DROP INDEX chunk_vectors_embedding")
            conn.execute("ALTER TABLE chunk_vectors DROP COLUMN indexed, DROP COLUMN digest")  # its index goes with it
            conn.execute("CREATE INDEX chunk_vectors_embedding ON chunk_vectors USING hnsw (embedding vector_cosine_ops)")
            conn.execute("CREATE INDEX chunk_vectors_document ON chunk_vectors (document_id)")
            conn.execute("DELETE FROM schema_migrations WHERE version IN (9, 10, 11, 12)")
        older = tessera(settings, "snapshot", "create", "--dir", str(into))
        assert older.returncode == 0 and "schema 8" in older.stdout, older.stdout + older.stderr
        assert tessera(settings, "down", timeout=180).returncode == 0
        migrated = tessera(settings, "snapshot", "restore", older.stdout.strip().splitlines()[-1], timeout=600)
        assert migrated.returncode == 0 and \
            "migrations applied: 0009_conversations.sql, 0010_sentences.sql, 0011_vector_twins.sql, 0012_principals.sql" in migrated.stdout, \
            migrated.stdout + migrated.stderr
        with psycopg.connect(secrets.database_url(settings, "owner"), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM conversations WHERE purpose = 'user' AND owner = ''").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM messages WHERE sentences = '[]'::jsonb").fetchone() == (2,)
            # every stored vector got its digest, and the notes (no text repeated) are all in the graph
            assert conn.execute("SELECT count(*) FILTER (WHERE indexed AND digest IS NOT NULL), count(*) FROM chunk_vectors").fetchone() \
                == (manifest["counts"]["chunk_vectors"],) * 2

        # encrypted with a key file, then restored onto another machine (a data directory of its own, other folders)
        key_file, wrong = tmp_path / "snapshot.key", tmp_path / "wrong.key"
        for file, text in ((key_file, "a passphrase for the snapshot test\n"), (wrong, "not the passphrase at all\n")):
            file.write_text(text)
            file.chmod(0o600)
        sealed = tessera(settings, "snapshot", "create", "--dir", str(into), "--key-file", str(key_file))
        assert sealed.returncode == 0 and "encrypted" in sealed.stdout, sealed.stdout + sealed.stderr
        sealed_path = Path(sealed.stdout.strip().splitlines()[-1])
        assert all((sealed_path / part).read_bytes()[:8] == b"TSEAL001" for part in (snapshot.DUMP, snapshot.FILES))
        unread = tessera(settings, "snapshot", "verify", str(sealed_path))
        assert unread.returncode == 0 and "were not read" in unread.stdout, unread.stdout + unread.stderr
        refused = tessera(settings, "snapshot", "restore", str(sealed_path), "--key-file", str(wrong))
        assert refused.returncode == 1 and "does not open this snapshot" in refused.stdout, refused.stdout + refused.stderr
        other = make_settings(tmp_path / "other-machine" / "data")
        try:
            moved = tessera(other, "snapshot", "restore", str(sealed_path), "--key-file", str(key_file), timeout=600)
            assert moved.returncode == 0 and f"{len(NOTES)} documents" in moved.stdout and "paths moved" in moved.stdout, moved.stdout + moved.stderr
            with psycopg.connect(secrets.database_url(other, "owner"), autocommit=True) as conn:
                paths = [r[0] for r in conn.execute("SELECT path FROM documents").fetchall()]
            assert len(paths) == len(NOTES) and all(p.startswith(str(other.path("imports"))) and Path(p).is_file() for p in paths), paths
        finally:
            tessera(other, "down", timeout=180)
    finally:
        tessera(settings, "down", timeout=180)
