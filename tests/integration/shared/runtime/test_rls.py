"""Row-level security (migration 0012) in the database itself: with the services' role and one principal set, another
project's rows and another person's conversations are neither read nor written, whatever the query asks; the pool
carries the principal of the task that draws a connection; the backup role reads everything; the audit log only grows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from shared.runtime import db, principal
from shared.runtime.config import Settings
from shared.runtime.principal import Principal


@pytest.fixture
async def two_projects(infra: Settings) -> AsyncIterator[tuple[str, str, str, str]]:
    """Projects a and b with one document and one chunk each, written as the system."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"rls-a-{tag}", f"rls-b-{tag}"
    docs = {}
    async with await db.connect_once(infra) as conn:
        for project in (a, b):
            doc = uuid.uuid4()
            await conn.execute("INSERT INTO documents (id, project, path, media_type, content_hash) VALUES (%s, %s, %s, 'text/markdown', 'x')",
                               (doc, project, f"/notes/{project}.md"))
            await conn.execute("INSERT INTO chunks (id, document_id, ord, text, char_start, char_end, line_start, line_end, project) "
                               "VALUES (%s, %s, 0, %s, 0, 5, 1, 1, %s)", (uuid.uuid4(), doc, f"secret of {project}", project))
            docs[project] = str(doc)
    yield a, b, docs[a], docs[b]
    async with await db.connect_once(infra) as conn:
        await conn.execute("DELETE FROM documents WHERE project = ANY(%s)", ([a, b],))


async def _scoped(conn: psycopg.AsyncConnection, name: str, projects: str, admin: str = "") -> None:
    await conn.execute(principal.SET_SQL, (name, projects, admin))


async def test_the_database_refuses_another_projects_rows(infra: Settings, two_projects: tuple[str, str, str, str]) -> None:
    a, b, doc_a, doc_b = two_projects
    async with await db.connect_once(infra) as conn:  # the services' role: no BYPASSRLS, owns nothing
        role = await (await conn.execute("SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = current_user")).fetchone()
        assert role == (False, False)
        await _scoped(conn, "alice", a)
        # however the query asks for b's rows, none come back
        assert await (await conn.execute("SELECT count(*) FROM chunks WHERE project = %s", (b,))).fetchone() == (0,)
        assert await (await conn.execute("SELECT count(*) FROM documents WHERE id = %s", (doc_b,))).fetchone() == (0,)
        rows = await (await conn.execute("SELECT text FROM chunks WHERE project = ANY(%s)", ([a, b],))).fetchall()
        assert rows == [(f"secret of {a}",)]
        # nor changed, nor deleted, nor written
        assert (await conn.execute("UPDATE documents SET title = 'mine now' WHERE id = %s", (doc_b,))).rowcount == 0
        assert (await conn.execute("DELETE FROM chunks WHERE project = %s", (b,))).rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await conn.execute("INSERT INTO documents (id, project, path, media_type, content_hash) VALUES (%s, %s, 'p', 'text/plain', 'x')",
                               (uuid.uuid4(), b))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            await conn.execute("UPDATE documents SET project = %s WHERE id = %s", (b, doc_a))  # moving a's note into b
        # a key scoped to no project at all reaches nothing (an empty list is not "every project")
        await _scoped(conn, "alice", principal.settings_for(Principal("alice", "reader", ()))[1])
        assert await (await conn.execute("SELECT count(*) FROM documents WHERE project = ANY(%s)", ([a, b],))).fetchone() == (0,)
        await _scoped(conn, "", "*", "1")
        assert await (await conn.execute("SELECT count(*) FROM documents WHERE project = ANY(%s)", ([a, b],))).fetchone() == (2,)
    async with await db.connect_once(infra, "backup") as conn:  # snapshots read every row
        await _scoped(conn, "alice", a)
        assert await (await conn.execute("SELECT count(*) FROM chunks WHERE project = ANY(%s)", ([a, b],))).fetchone() == (2,)


async def test_the_pool_carries_the_tasks_principal(infra: Settings, pool: AsyncConnectionPool,
                                                    two_projects: tuple[str, str, str, str]) -> None:
    a, b, _, _ = two_projects
    reads = await db.open_read_pool(infra)
    sql, both = "SELECT project FROM chunks WHERE project = ANY(%s) ORDER BY project", ([a, b],)
    try:
        for who, want in ((Principal("alice", "reader", (a,)), [a]), (Principal("bob", "writer", (b,)), [b]),
                          (principal.SYSTEM, [a, b]), (Principal("carol", "admin", None), [a, b]), (Principal("dan", "reader", ()), [])):
            token = principal.current.set(who)
            try:
                for _ in range(3):  # connections handed out again keep no earlier caller's settings
                    async with pool.connection() as conn:
                        assert [r[0] for r in await db.fetch(conn, sql, both)] == want, who
                    assert [r[0] for r in await db.read(reads, sql, both)] == want, who
            finally:
                principal.current.reset(token)
    finally:
        await reads.close()


async def test_conversations_and_jobs_belong_to_who_made_them(infra: Settings, pool: AsyncConnectionPool) -> None:
    conversation, job = uuid.uuid4(), uuid.uuid4()
    alice, bob = Principal("alice", "writer", None), Principal("bob", "writer", None)
    token = principal.current.set(alice)
    try:
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO conversations (id, title) VALUES (%s, 'mine')", (conversation,))
            await conn.execute("INSERT INTO messages (id, conversation_id, role, content) VALUES (%s, %s, 'user', 'hello')",
                               (uuid.uuid4(), conversation))
            await conn.execute("INSERT INTO ingest_jobs (id, root) VALUES (%s, '/notes')", (job,))
            owner = await (await conn.execute("SELECT owner FROM conversations WHERE id = %s", (conversation,))).fetchone()
            assert owner == ("alice",)
    finally:
        principal.current.reset(token)
    token = principal.current.set(bob)
    try:
        async with pool.connection() as conn:
            assert await (await conn.execute("SELECT count(*) FROM conversations WHERE id = %s", (conversation,))).fetchone() == (0,)
            assert await (await conn.execute("SELECT count(*) FROM messages WHERE conversation_id = %s", (conversation,))).fetchone() == (0,)
            assert await (await conn.execute("SELECT count(*) FROM ingest_jobs WHERE id = %s", (job,))).fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):  # nor write into hers
                await conn.execute("INSERT INTO messages (id, conversation_id, role, content) VALUES (%s, %s, 'user', 'hi')",
                                   (uuid.uuid4(), conversation))
    finally:
        principal.current.reset(token)
    for who in (Principal("erin", "admin", None), principal.SYSTEM):  # an admin and background work see it
        token = principal.current.set(who)
        try:
            async with pool.connection() as conn:
                assert await (await conn.execute("SELECT count(*) FROM messages WHERE conversation_id = %s", (conversation,))).fetchone() == (1,)
        finally:
            principal.current.reset(token)
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM conversations WHERE id = %s", (conversation,))
        await conn.execute("DELETE FROM ingest_jobs WHERE id = %s", (job,))


async def test_the_audit_log_only_grows(infra: Settings) -> None:
    async with await db.connect_once(infra) as conn:
        row = await (await conn.execute("INSERT INTO audit_log (principal, surface, action) VALUES ('alice', 'rest', 'write') "
                                        "RETURNING id")).fetchone()
        assert row is not None
        for statement in ("UPDATE audit_log SET principal = 'nobody' WHERE id = %s", "DELETE FROM audit_log WHERE id = %s"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                await conn.execute(statement, (row[0],))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            await conn.execute("TRUNCATE audit_log")
