"""`tessera export` against the session mesh: every document as markdown with its metadata; `tessera ingest` of the
folder brings them back with the same ids and metadata (the enrichment kept, no model asked), and stores nothing twice
when they are here already."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml
from helpers import ServiceProcess, mesh_channel, tessera

from shared.client import Client
from shared.gen.tessera.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc
from shared.runtime.config import Settings

NOTES = {
    "raft.md": "---\ntitle: Raft elections\ntype: howto\ntags: [raft, consensus]\nowner: ops team\n---\n# Raft elections\n\n"
               "A follower becomes a candidate when its election timeout passes without a heartbeat from the leader.\n",
    "backoff.md": "# Retries need jitter\n\nExponential backoff alone synchronises clients after an outage; add random jitter.\n",
    "grid.md": "---\ntitle: CSS grid\ntags: [css]\n---\nCSS grid places items in rows and columns with grid-template-columns.\n",
}
ENRICHED = common_pb2.Enrichment(state="enriched", kind="insight", summary="Jitter spreads the retries of many clients.",
                                 tags=["retries", "backoff"], entities=[common_pb2.Entity(name="AWS", kind="technology")])


def meta_of(path: Path) -> tuple[dict[str, object], str]:
    text = path.read_text()
    assert text.startswith("---\n"), text[:80]
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


async def snapshot_of(client: Client, project: str) -> dict[str, tuple[object, ...]]:
    docs = (await client.documents(project=project, limit=50)).documents
    return {d.document_id: (d.title, d.type, tuple(d.tags), d.project, d.created_at.seconds, d.enrichment.state, d.enrichment.kind,
                            d.enrichment.summary, tuple(d.enrichment.tags), tuple((e.name, e.kind) for e in d.enrichment.entities))
            for d in docs}


async def test_export_then_ingest_round_trips(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    project = f"export-{uuid.uuid4().hex[:6]}"
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    async with Client(infra) as client:
        job = await client.ingest(folder, project=project)
        assert job.counts.embedded == len(NOTES), job
        backoff = next(d for d in (await client.documents(project=project)).documents if d.path.endswith("backoff.md"))
        async with mesh_channel(infra, infra.address("ingest")) as ch:  # as chat's enrichment stores it
            stored = await ingest_pb2_grpc.IngestServiceStub(ch).SetEnrichment(ingest_pb2.SetEnrichmentRequest(
                document_id=backoff.document_id, content_hash=backoff.content_hash, enrichment=ENRICHED), timeout=30)
        assert stored.stored
        before = await snapshot_of(client, project)

    out = tmp_path / "export"
    done = tessera(infra, "export", str(out), "--project", project)
    assert done.returncode == 0 and f"{len(NOTES)} of {len(NOTES)} documents written" in done.stdout, done.stdout + done.stderr
    files = sorted(out.rglob("*.md"))
    assert [f.parent.name for f in files] == [project] * len(NOTES)
    metas = {m["tessera_id"]: (m, body) for m, body in map(meta_of, files)}
    assert set(metas) == set(before)
    raft = next(m for m, _ in metas.values() if m["title"] == "Raft elections")
    assert raft["type"] == "howto" and raft["tags"] == ["consensus", "raft"] and raft["project"] == project
    assert raft["owner"] == "ops team" and raft["source"].endswith("/raft.md") and "created" in raft  # the note's own keys stay
    jitter, body = metas[backoff.document_id]
    assert jitter["summary"] == ENRICHED.summary and jitter["entities"] == ["AWS (technology)"] and jitter["kind"] == "insight"
    assert body.startswith("# Retries need jitter\n") and "---" not in body

    # into the same Tessera: every note is here already, nothing is stored twice
    again = tessera(infra, "ingest", str(out), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    async with Client(infra) as client:
        assert await snapshot_of(client, project) == before
        # into a Tessera without them (the project's documents deleted): the same ids and metadata come back, with the
        # enrichment from the files (no model asked: this project is not one the session mesh enriches)
        for doc_id in before:
            assert (await client.delete_document(doc_id)).deleted
        assert await snapshot_of(client, project) == {}
        job = await client.ingest(out)
        assert job.counts.embedded == len(NOTES), job
        # the enrichment is stored with each document, before its embedding is queued: no wait for it
        assert await snapshot_of(client, project) == before
