"""External servers mode: PostgreSQL, NATS and Valkey started outside the mesh, `TESSERA_EMBEDDED` empty and the URLs
pointing at them (with the credentials they were given), under `tessera up` and `down` as `make run` uses them."""

from __future__ import annotations

import asyncio
import secrets as pysecrets
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from helpers import make_settings, tessera

from shared.client import Client
from shared.ops.infra import Nats, Postgres, Valkey, embedded_servers, free_port, port_open
from shared.runtime import secrets

pytestmark = [pytest.mark.e2e, pytest.mark.tier2]  # CI runs it in its second tier (make test-tier2): a pm2 mesh on outside servers


async def test_the_mesh_runs_on_servers_it_did_not_start(tmp_path: Path) -> None:
    outside = tmp_path / "outside"   # another "host": its own folders, ports and passwords
    pg_pw = {role: pysecrets.token_urlsafe(18) for role in secrets.PG_ROLES}
    nats_pw, redis_pw = pysecrets.token_urlsafe(18), pysecrets.token_urlsafe(18)
    servers = [Postgres("postgres", outside / "postgres", free_port(), passwords=pg_pw),
               Nats("nats", outside / "nats", free_port(), password=nats_pw),
               Valkey("redis", outside / "redis", free_port(), password=redis_pw)]
    pg, nats, valkey = servers
    for server in servers:
        server.start()
    settings = make_settings(
        tmp_path / "data", TESSERA_LOG_LEVEL="info", TESSERA_EMBEDDED="",
        # the owner role: with an external server the mesh applies its own migrations
        TESSERA_DATABASE_URL=f"postgresql://{secrets.PG_OWNER}:{pg_pw['owner']}@127.0.0.1:{pg.port}/tessera",
        TESSERA_NATS_URL=f"nats://{secrets.NATS_USER}:{nats_pw}@127.0.0.1:{nats.port}",
        TESSERA_REDIS_URL=f"redis://:{redis_pw}@127.0.0.1:{valkey.port}/0")
    assert settings.infra.embedded == [] and embedded_servers(settings) == []
    try:
        up = tessera(settings, "up", "--timeout", "300")
        assert up.returncode == 0, up.stdout + up.stderr
        for pw in [*pg_pw.values(), nats_pw, redis_pw]:
            assert pw not in up.stdout + up.stderr, "a password of an external server was printed"
        # nothing embedded was made: no server folders, no generated infrastructure passwords
        assert not settings.path("infra").exists()
        made = sorted(p.name for p in secrets.folder(settings).iterdir())
        assert not [name for name in made if name.startswith(("postgres-", "nats-", "redis-"))], made

        body = f"The external pump primes in {uuid.uuid4().hex[:6]} strokes before it draws water."
        async with Client(settings) as client:
            note = await client.capture("Pump priming", body, project="outside")
            assert not note.duplicate
            for _ in range(240):
                job = await client.job(note.job_id)
                if job.done:
                    break
                await asyncio.sleep(0.5)
            assert job.done and job.counts.embedded == 1, job
            first = await client.search("how many strokes to prime the pump", project="outside")
            assert first.hits and first.hits[0].source.document_id == note.document_id, first
            again = await client.search("how many strokes to prime the pump", project="outside")
            assert again.cached, "the second search should come from the external Valkey"
        # the data went where the URLs point
        with psycopg.connect(settings.infra.database_url) as conn:
            rows = conn.execute("SELECT title FROM documents WHERE project = 'outside'").fetchall()
        assert rows == [("Pump priming",)]
        cache = redis.Redis(host="127.0.0.1", port=valkey.port, password=redis_pw)
        try:
            assert cache.dbsize() > 0
        finally:
            cache.close()
        status = tessera(settings, "status")
        assert status.returncode == 0, status.stdout + status.stderr
    finally:
        down = tessera(settings, "down", timeout=180)
        try:
            assert down.returncode == 0, down.stdout + down.stderr
            # `down` stops what the project started, never a server it was only pointed at
            assert all(port_open(s.port) for s in servers), [(s.name, s.port) for s in servers]
        finally:
            for server in servers:
                server.stop()
