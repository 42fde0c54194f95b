"""API keys, note files and OpenAI shapes of the gateway."""

from __future__ import annotations

import base64
import datetime as dt

import numpy as np
import pytest

from services.gateway.auth import AuthError, KeyRing
from services.gateway.convert import CompletionChunks, embedding_json, error_body
from services.gateway.notes import note_markdown, note_name
from services.gateway.schemas import NoteIn
from shared.gen.tessera.v1 import chat_pb2
from shared.runtime.files import slug


def test_keyring_accepts_only_configured_bearer_keys() -> None:
    ring = KeyRing(["s3cret"])
    assert ring.identify("Bearer s3cret", "1.2.3.4").startswith("key:")
    assert "s3cret" not in ring.identify("Bearer s3cret", "1.2.3.4")  # only a digest prefix leaves
    for header, words in ((None, "needs an API key"), ("Basic abc", "must be 'Bearer <key>'"), ("Bearer nope", "not valid")):
        with pytest.raises(AuthError, match=words):
            ring.identify(header, "1.2.3.4")
    with pytest.raises(AuthError, match="needs an API key"):  # no key configured: nothing is let through, loopback included
        KeyRing([]).identify(None, "127.0.0.1")


def test_note_file_has_frontmatter_and_a_unique_name() -> None:
    now = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    note = NoteIn(title="Café: plans / ideas!", body="Some text.", project="p", tags=["a"])
    text = note_markdown(note, now)
    assert text.startswith("---\ntitle: 'Café: plans / ideas!'\ntype: note\ntags:\n- a\n") and "project: p" in text
    assert "# Café: plans / ideas!\n\nSome text.\n" in text
    assert slug(note.title) == "cafe-plans-ideas"
    first = note_name(note, now, set())
    assert first == "2026-03-04-cafe-plans-ideas.md" and note_name(note, now, {first}) == "2026-03-04-cafe-plans-ideas-2.md"


def test_openai_chunks_and_embeddings() -> None:
    chunks = CompletionChunks("chatcmpl-1", "m")
    first, second = chunks.content("Hi", [{"number": 1}]), chunks.content(" there")
    assert first["choices"][0]["delta"] == {"content": "Hi", "role": "assistant"} and first["citations"] == [{"number": 1}]
    assert second["choices"][0]["delta"] == {"content": " there"}
    last = chunks.done(chat_pb2.ChatDone(finish_reason="length", conversation_id="c"))
    assert last["choices"][0]["finish_reason"] == "length" and last["conversation_id"] == "c"
    b64 = embedding_json([0.5, -1.0], 0, "base64")["embedding"]
    assert np.frombuffer(base64.b64decode(b64), dtype="<f4").tolist() == [0.5, -1.0]
    assert error_body(429, "slow down")["error"]["type"] == "rate_limit_error"
