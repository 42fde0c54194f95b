"""Chat's SQL: conversations and their messages, the chunks an answer quotes, and the sweep of dead answers.

An answer's row is written 'generating' with the process that owns it (its
PostgreSQL application_name) before the first token; a process that dies leaves
it so, and any live chat instance marks it 'failed' once no session of that
owner remains (``sweep_failed``).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from shared.contracts import FINISH_FAILED, FINISH_GENERATING, PURPOSE_USER
from shared.runtime.db import fetch_dicts


@dataclass
class NewTurn:
    """A question about to be answered: where it goes and how big its prompt is."""

    conversation_id: str
    is_new: bool
    title: str
    question: str
    prompt_tokens: int
    purpose: str = PURPOSE_USER


CONVERSATION_COLUMNS = "id::text AS id, title, created_at, updated_at, purpose"


class ConversationBusy(Exception):
    """An answer is being generated in the conversation."""


class ChatStore:
    def __init__(self, pool: AsyncConnectionPool, owner: str) -> None:
        """``owner``: this process's application_name, as its connections appear in pg_stat_activity."""
        self.pool, self.owner = pool, owner

    async def history(self, conversation_id: str) -> list[tuple[str, str]] | None:
        """(role, content) of a conversation's messages in order, empty answers left out; None when there is none."""
        async with self.pool.connection() as conn:
            if not await fetch_dicts(conn, "SELECT id FROM conversations WHERE id = %s", (conversation_id,)):
                return None
            rows = await fetch_dicts(conn, "SELECT role, content FROM messages WHERE conversation_id = %s ORDER BY created_at, id",
                                     (conversation_id,))
        return [(str(r["role"]), str(r["content"])) for r in rows if r["content"]]

    async def chunk_texts(self, chunk_ids: list[str]) -> dict[str, dict[str, Any]]:
        """chunk id → {"text", "line_start", "line_end"} of the chunks that still exist."""
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(conn, "SELECT id::text AS id, text, line_start, line_end FROM chunks WHERE id = ANY(%s::uuid[])",
                                     (chunk_ids,))
        return {str(r["id"]): r for r in rows}

    async def store_question(self, turn: NewTurn, message_id: str) -> None:
        """The question, and the answer's row marked 'generating' by this instance (a crash leaves it for the sweep)."""
        async with self.pool.connection() as conn, conn.transaction():
            if turn.is_new:
                await conn.execute("INSERT INTO conversations (id, title, purpose) VALUES (%s, %s, %s)",
                                   (turn.conversation_id, turn.title, turn.purpose))
            await conn.execute("INSERT INTO messages (id, conversation_id, role, content) VALUES (%s, %s, 'user', %s)",
                               (str(uuid.uuid4()), turn.conversation_id, turn.question))
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, role, content, finish_reason, prompt_tokens, owner, created_at) "
                "VALUES (%s, %s, 'assistant', '', %s, %s, %s, clock_timestamp())",
                (message_id, turn.conversation_id, FINISH_GENERATING, turn.prompt_tokens, self.owner))

    async def store_answer(self, conversation_id: str, message_id: str, answer: str, cited: list[dict[str, Any]], finish: str,
                           completion_tokens: int, sentences: list[dict[str, Any]] | None = None) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE messages SET content = %s, citations = %s::jsonb, finish_reason = %s, completion_tokens = %s, "
                "sentences = %s::jsonb WHERE id = %s",
                (answer, json.dumps(cited), finish, completion_tokens, json.dumps(sentences or []), message_id))
            await conn.execute("UPDATE conversations SET updated_at = now() WHERE id = %s", (conversation_id,))

    async def sweep_failed(self) -> int:
        """Mark 'failed' the answers whose owning chat process is gone (no session of it in PostgreSQL)."""
        async with self.pool.connection() as conn:
            cur = await conn.execute(
                "UPDATE messages SET finish_reason = %s WHERE finish_reason = %s AND owner <> %s"
                " AND created_at < now() - interval '2 seconds'"
                " AND owner NOT IN (SELECT application_name FROM pg_stat_activity WHERE application_name <> '')",
                (FINISH_FAILED, FINISH_GENERATING, self.owner))
            return cur.rowcount

    async def conversation(self, conversation_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The conversation's row and its messages' rows, or None."""
        async with self.pool.connection() as conn:
            conv = await fetch_dicts(conn, f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = %s", (conversation_id,))
            if not conv:
                return None
            rows = await fetch_dicts(conn, "SELECT id::text AS id, role, content, citations, sentences, created_at, finish_reason FROM messages "
                                           "WHERE conversation_id = %s ORDER BY created_at, id", (conversation_id,))
        return conv[0], rows

    async def conversations(self, limit: int, purpose: str | None = None) -> list[dict[str, Any]]:
        """The most recently updated conversations of one purpose (None: every purpose) first."""
        async with self.pool.connection() as conn:
            return await fetch_dicts(conn, f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE %(purpose)s::text IS NULL "
                                           "OR purpose = %(purpose)s ORDER BY updated_at DESC LIMIT %(limit)s",
                                     {"purpose": purpose, "limit": limit})

    async def erase_citations(self, document_id: str) -> int:
        """A deleted note leaves the stored answers' citations: each that cited it keeps its number, marked deleted, without
        its title, path, lines or chunk; a sentence it supported keeps its mark, without the source. How many messages changed."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE messages SET sentences = (SELECT coalesce(jsonb_agg(CASE WHEN s->'source'->>'document_id' = %(id)s THEN"
                " s || jsonb_build_object('source', null, 'deleted', true) ELSE s END ORDER BY n), '[]'::jsonb)"
                " FROM jsonb_array_elements(sentences) WITH ORDINALITY AS t(s, n))"
                " WHERE sentences @> jsonb_build_array(jsonb_build_object('source', jsonb_build_object('document_id', %(id)s::text)))",
                {"id": document_id})
            cur = await conn.execute(
                "UPDATE messages SET citations = (SELECT coalesce(jsonb_agg(CASE WHEN c->>'document_id' = %(id)s THEN"
                " jsonb_build_object('number', c->'number', 'document_id', c->'document_id', 'deleted', true, 'title', '(deleted note)',"
                " 'path', '', 'chunk_id', '', 'line_start', 0, 'line_end', 0, 'score', c->'score', 'origin', c->'origin')"
                " ELSE c END ORDER BY n), '[]'::jsonb) FROM jsonb_array_elements(citations) WITH ORDINALITY AS t(c, n))"
                " WHERE citations @> jsonb_build_array(jsonb_build_object('document_id', %(id)s::text))", {"id": document_id})
            return cur.rowcount

    async def rename(self, conversation_id: str, title: str) -> dict[str, Any] | None:
        """The renamed conversation's row, or None when there is none."""
        async with self.pool.connection() as conn:
            rows = await fetch_dicts(conn, f"UPDATE conversations SET title = %s WHERE id = %s RETURNING {CONVERSATION_COLUMNS}",
                                     (title, conversation_id))
        return rows[0] if rows else None

    async def delete(self, conversation_id: str) -> int | None:
        """Delete a conversation and its messages (the foreign key cascades): how many messages went, or None when there
        is no such conversation. Refused (ConversationBusy) while one of its answers is being generated."""
        async with self.pool.connection() as conn, conn.transaction():
            found = await fetch_dicts(conn, "SELECT id FROM conversations WHERE id = %s FOR UPDATE", (conversation_id,))
            if not found:
                return None
            busy = await fetch_dicts(conn, "SELECT 1 FROM messages WHERE conversation_id = %s AND finish_reason = %s LIMIT 1",
                                     (conversation_id, FINISH_GENERATING))
            if busy:
                raise ConversationBusy(conversation_id)
            count = await fetch_dicts(conn, "SELECT count(*) AS n FROM messages WHERE conversation_id = %s", (conversation_id,))
            await conn.execute("DELETE FROM conversations WHERE id = %s", (conversation_id,))
        return int(count[0]["n"])

    # -- what the enrichers read of ingest's documents ----------------------------------------------------------------
    async def enrich_source(self, doc_id: uuid.UUID) -> dict[str, Any] | None:
        """What enrichment reads of a document: project, title, content hash, the user's own fields, state, first chunks."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                "SELECT d.project, d.title, d.content_hash, d.user_fields, d.enrich_state,"
                " (SELECT string_agg(c.text, E'\\n' ORDER BY c.ord) FROM (SELECT text, ord FROM chunks WHERE document_id = d.id"
                "  ORDER BY ord LIMIT 12) c) FROM documents d WHERE d.id = %s", (doc_id,))).fetchone()
        if row is None:
            return None
        return {"project": row[0], "title": row[1], "content_hash": row[2], "user_fields": list(row[3]), "state": row[4], "text": row[5] or ""}

    async def enrich_state(self, doc_id: uuid.UUID) -> str:
        """An embedded document's enrichment state ('' when it is gone or not embedded yet)."""
        async with self.pool.connection() as conn:
            row = await (await conn.execute("SELECT enrich_state FROM documents WHERE id = %s AND embedded", (doc_id,))).fetchone()
        return str(row[0]) if row else ""

    async def pending_enrichment(self, age_s: float) -> list[uuid.UUID]:
        """Embedded documents still waiting for enrichment ``age_s`` after their last change, oldest first."""
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT id FROM documents WHERE enrich_state = 'pending' AND embedded"
                " AND updated_at < now() - make_interval(secs => %s) ORDER BY updated_at LIMIT 200", (age_s,))).fetchall()
        return [r[0] for r in rows]
