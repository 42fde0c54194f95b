"""The client SDK against the session's mesh: typed replies and events over both transports, typed errors, and the
blocking wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ServiceProcess

from shared.client import Citation, Client, Done, InvalidArgument, NotFound, PermissionDenied, SyncClient, Token
from shared.runtime.config import Settings


@pytest.mark.parametrize("transport", ["quic", "grpc"])
async def test_chat_yields_the_same_typed_events_on_both_transports(infra: Settings, home_notes: Path, transport: str) -> None:
    async with Client(infra, transport=transport) as tessera:  # type: ignore[arg-type]
        stream = await tessera.chat("How do I descale a kettle?", project="home", max_tokens=48)
        assert stream.conversation_id, "the conversation is known once the answer is admitted"
        events = [event async for event in stream]
    assert isinstance(events[-1], Done) and events[-1].conversation_id == stream.conversation_id
    assert all(isinstance(e, Token | Citation) for e in events[:-1]) and any(isinstance(e, Token) for e in events)
    assert any(s.source.path.endswith("kettle.md") for s in events[-1].sources)


async def test_search_related_document_and_errors(infra: Settings, home_notes: Path) -> None:
    async with Client(infra) as tessera:
        reply = await tessera.search("descale kettle", project="home", top_k=3)
        top = reply.hits[0]
        assert top.source.path.endswith("kettle.md") and {s.name for s in top.signals} == {"lexical", "vector"}
        doc = await tessera.document(top.source.document_id)
        assert doc.title == "Kettle descaling"
        assert (await tessera.related(path=doc.path)).related is not None
        with pytest.raises(InvalidArgument, match="query is empty"):
            await tessera.search("   ")
        with pytest.raises(NotFound, match="no conversation"):
            await tessera.conversation("00000000-0000-4000-8000-000000000000")
        with pytest.raises(PermissionDenied, match="outside the configured roots"):
            await tessera.ingest_path("/etc")


def test_the_blocking_client_ingests_searches_and_asks(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    folder = tmp_path / "sync-notes"
    folder.mkdir()
    (folder / "basil.md").write_text("---\ntitle: Basil\nproject: garden\n---\n# Basil\n\nBasil wants six hours of sun and "
                                     "water every morning; pinch the flowers off so the leaves keep coming.\n")
    with SyncClient(infra) as tessera:
        job = tessera.ingest(folder, project="garden")
        assert job.done and job.counts.embedded == 1, job
        hits = tessera.search("how much sun does basil need", project="garden").hits
        assert hits and hits[0].source.title == "Basil"
        events = list(tessera.chat("How much sun does basil need?", project="garden", max_tokens=32))
        assert isinstance(events[-1], Done)
        answer = tessera.ask("When should basil be watered?", project="garden", max_tokens=32)
        assert answer.done is not None and answer.text
