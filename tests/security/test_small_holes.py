"""The smaller holes of issue 28, each closed and checked against real servers: the search log's volume, the QUIC
opening frame, temporary files in shared folders, credentials printed by `tessera status`, the key compose shipped."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import yaml
from helpers import ROOT, ServiceProcess, child_env

from services.search.activity import Activity
from shared.gen.tessera.v1 import common_pb2
from shared.quic import QuicClient, QuicServer
from shared.quic.frames import HEADER, encode
from shared.runtime import db
from shared.runtime.config import Settings
from shared.runtime.files import atomic_write


async def test_the_search_log_is_bounded_by_volume_not_only_by_age(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    """Hole: search_hits was pruned by age (180 days) only: a flood of searches grew it without bound."""
    settings = infra.with_overrides(search_log_rows=25)
    pool = await db.open_pool(settings)
    try:
        async with pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany("INSERT INTO search_hits (document_id, rank, at) VALUES (%s, 1, now() - %s * interval '1 second')",
                                  [(uuid.uuid4(), i) for i in range(200)])
            await cur.executemany("INSERT INTO query_log (kind, query, hits, top_score, answered) VALUES ('search', %s, 1, 0.5, false)",
                                  [(f"flood {i}",) for i in range(200)])
        activity = Activity(SimpleNamespace(db=pool, settings=settings))  # type: ignore[arg-type]
        await activity.prune()
        async with pool.connection() as conn:
            hits = (await (await conn.execute("SELECT count(*) FROM search_hits")).fetchone())[0]  # type: ignore[index]
            queries = (await (await conn.execute("SELECT count(*) FROM query_log")).fetchone())[0]  # type: ignore[index]
        assert hits <= 25 and queries <= 25, (hits, queries)
    finally:
        await pool.close()


async def test_a_huge_quic_opening_frame_is_refused_from_its_header(tmp_path: Path) -> None:
    """Hole: the opening frame was buffered up to 64 MiB before its 1 KiB check. Its header announcing 64 MiB is refused
    at once, without waiting for (or holding) the body."""
    settings = Settings(data_dir=tmp_path)
    server = await QuicServer(settings).start()
    client = QuicClient(settings)
    try:
        host, port = server.address.rsplit(":", 1)
        proto = await client.connection(host, int(port))
        stream_id = proto._quic.get_next_available_stream_id()
        await proto.write(stream_id, HEADER.pack(64 * 1024 * 1024 - 1) + b"x" * 1000)  # no end: the rest "is coming"
        body = await asyncio.wait_for(proto.read_frame(stream_id), 3.0)  # the 10 s opening timeout would be DEADLINE_EXCEEDED
        assert body is not None
        reply = common_pb2.StreamReply.FromString(body)
        assert reply.code == "INVALID_ARGUMENT" and "StreamOpen" in reply.message
        assert server.stats.refused == 1
        good = encode(common_pb2.StreamOpen(token=b"\0" * 32))
        assert len(good) < 1024  # a real opening frame is far below the limit
    finally:
        await client.close()
        await server.close()


def test_an_atomic_write_never_follows_a_planted_temporary_name(tmp_path: Path) -> None:
    """Hole: `note.md.tmp`, a predictable name in a shared folder: another local user plants a symlink there and the
    next write goes through it (into their file, or over one of ours)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    target = tmp_path / "note.md"
    for planted in ("note.md.tmp", "note.tmp", ".note.md.tmp"):
        (tmp_path / planted).symlink_to(victim)
    atomic_write(target, "# Note\n")
    assert target.read_text() == "# Note\n" and not target.is_symlink()
    assert victim.read_text() == "untouched"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".note.md.") and not p.is_symlink()]  # no leftovers
    atomic_write(tmp_path / "secret.pem", b"k", 0o600)
    assert (tmp_path / "secret.pem").stat().st_mode & 0o777 == 0o600


def test_tessera_status_prints_no_credentials(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    """Hole: credentials inside URLs were printed by `tessera status` (a Redis URL has a password and no user name)."""
    env = child_env(infra, TESSERA_EMBEDDED="postgres,nats", TESSERA_REDIS_URL=infra.infra.redis_url.replace("//", "//:topsecret-pw@"),
                    TESSERA_DATABASE_URL=infra.infra.database_url.replace("tessera@", "tessera:db-topsecret@"))
    result = subprocess.run([sys.executable, "-m", "shared.cli", "status", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    report = json.loads(result.stdout)
    out = result.stdout + result.stderr
    assert "topsecret" not in out, out[-2000:]
    urls = {i["name"]: i["url"] for i in report["infra"]}
    assert urls["redis"].startswith("redis://:***@") and urls["postgres"].startswith("postgresql://tessera:***@")


def test_compose_ships_no_key() -> None:
    """Hole: deploy/compose.yaml shipped the key `change-me`: every compose install had the same one."""
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    assert "change-me" not in text
    gateway = yaml.safe_load(text)["services"]["gateway"]["environment"]
    assert gateway["TESSERA_GATEWAY_API_KEYS"].startswith("${TESSERA_GATEWAY_API_KEYS:?")  # compose stops without one


def test_no_service_runs_as_a_database_superuser(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    """Hole: every service connected as the embedded server's superuser (which may run programs)."""
    import psycopg

    from shared.runtime import secrets

    with psycopg.connect(secrets.database_url(infra, "superuser")) as conn:
        rows = conn.execute("SELECT a.usename, u.usesuper, a.pid = pg_backend_pid() FROM pg_stat_activity a "
                            "JOIN pg_user u ON u.usename = a.usename WHERE a.backend_type = 'client backend'").fetchall()
    others = [(name, sup) for name, sup, mine in rows if not mine]
    assert ("tessera", False) in others  # the services' runtime role
    assert not [name for name, sup in others if sup], rows
