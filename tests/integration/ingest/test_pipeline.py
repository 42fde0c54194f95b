"""The knowledge pipeline through the real mesh: ingest → embed → hybrid search."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import psycopg
import pytest
from helpers import MESH_ENV, ROOT, Launcher, ServiceProcess, child_env, make_pdf, mesh_channel, service_ports, wait_serving

from services.embed.server import DURABLE
from shared.contracts import EMBED_STREAM
from shared.gen.tessera.v1 import common_pb2, ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from shared.gen.tessera.v1 import common_pb2_grpc as node_grpc
from shared.runtime import secrets
from shared.runtime.config import Settings, load_settings, settings_env

NOTES = {
    "tides.md": "---\ntitle: Tide gauge upkeep\ntype: howto\ntags: [ocean, sensors]\nproject: coast\n---\n# Tide gauge upkeep\n\n"
                "## Calibration\n\nThe float gauges drift about two millimetres each month.\n"
                "We recalibrate them every spring against the brass benchmark on the pier.\n",
    "bread.md": "---\ntitle: Sourdough\ntype: note\ntags: [food]\nproject: kitchen\n---\n# Sourdough\n\n"
                "Feed the starter with equal parts flour and water every morning. Bake at 250 degrees for 40 minutes.\n",
    "bikes.txt": "Bicycle chains need oil every 300 kilometres, more often in the rain.\n",
    "meeting.md": "---\ntitle: Budget meeting\ntype: meeting\ntags: [finance, ocean]\nproject: coast\ncreated: 2024-05-02\n---\n"
                  "# Budget meeting\n\nWe agreed to buy two new radar sensors for the harbour next year.\n",
}


@pytest.fixture(scope="module")
def stubs_addrs(infra: Settings, mesh: dict[str, ServiceProcess]) -> Settings:
    return infra


@pytest.fixture
async def ingest_stub(infra: Settings, mesh: dict[str, ServiceProcess]) -> AsyncIterator[ingest_pb2_grpc.IngestServiceStub]:
    async with mesh_channel(infra, infra.address("ingest")) as ch:
        yield ingest_pb2_grpc.IngestServiceStub(ch)


@pytest.fixture
async def search_stub(infra: Settings, mesh: dict[str, ServiceProcess]) -> AsyncIterator[search_pb2_grpc.SearchServiceStub]:
    async with mesh_channel(infra, infra.address("search")) as ch:
        yield search_pb2_grpc.SearchServiceStub(ch)


async def ingest_folder(stub: ingest_pb2_grpc.IngestServiceStub, folder: Path, project: str = "") -> ingest_pb2.IngestJob:
    job = await stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder), project=project), timeout=30)
    job = await last_of(stub.WatchJob(ingest_pb2.GetJobRequest(job_id=job.job_id, include_files=True), timeout=300))
    assert job.done
    return job


async def last_of(stream: Any) -> Any:
    """The final message of a server stream (WatchJob ends when the job is done)."""
    item = None
    async for item in stream:  # noqa: B007 - only the last one matters
        pass
    return item


def long_document(folder: Path, title: str, heading: str, paragraph: str, sections: int) -> Path:
    """A folder with one markdown file of ``sections`` sections (about a chunk each); ``{i}`` in the paragraph is its number."""
    folder.mkdir()
    body = "\n\n".join(f"## {heading} {i}\n\n" + paragraph.replace("{i}", str(i)) for i in range(sections))
    (folder / "document.md").write_text(f"# {title}\n\n{body}\n")
    return folder


def by_name(job: ingest_pb2.IngestJob) -> dict[str, ingest_pb2.FileStatus]:
    return {Path(f.path).name: f for f in job.files}


def write_notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in NOTES.items():
        (folder / name).write_text(text)
    return folder


async def test_folder_ingest_reports_bad_files_and_keeps_the_rest(tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub,
                                                                  search_stub: search_pb2_grpc.SearchServiceStub) -> None:
    folder = write_notes(tmp_path / "notes")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (folder / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (folder / "empty.md").write_text("")
    (folder / "locked.pdf").write_bytes(make_pdf("secret", password="pw"))
    (folder / "huge.txt").write_bytes(b"a" * 1_200_000)  # TESSERA_INGEST_MAX_BYTES=1000000 in the tests
    (folder / "weird.md").write_text("---\ntitle: Odd\ntype: recipe-card\n---\nA card about pancakes.\n")
    job = await ingest_folder(ingest_stub, folder, project="pipeline-a")
    files = by_name(job)
    assert {n for n, f in files.items() if f.state == ingest_pb2.FILE_STATE_EMBEDDED} == {*NOTES, "weird.md"}
    reasons = {n: f.reason for n, f in files.items() if f.state == ingest_pb2.FILE_STATE_FAILED}
    assert "binary file" in reasons["binary.txt"] and "not valid UTF-8" in reasons["latin1.txt"]
    assert reasons["empty.md"] == "empty file" and "encrypted PDF" in reasons["locked.pdf"]
    assert "over the configured limit" in reasons["huge.txt"]
    assert "unknown type 'recipe-card' kept" in files["weird.md"].warnings[0]
    assert job.counts.failed == 5 and job.counts.chunks_embedded == job.counts.chunks > 0
    summary = await ingest_stub.GetJob(ingest_pb2.GetJobRequest(job_id=job.job_id, include_files=False), timeout=10)
    assert summary.counts == job.counts and summary.done and not summary.files, "counted in SQL as from the files"

    reply = await search_stub.Search(search_pb2.SearchRequest(
        query="how often are the tide sensors re-calibrated?", filters=common_pb2.Filters(project="pipeline-a")), timeout=30)
    top = reply.hits[0]
    assert Path(top.source.path).name == "tides.md" and top.source.title == "Tide gauge upkeep"
    lines = (folder / "tides.md").read_text().splitlines()
    shown = "\n".join(lines[top.source.line_start - 1:top.source.line_end])
    assert "recalibrate" in shown and "recalibrate" in top.snippet
    assert {s.name for s in top.signals} == {"lexical", "vector"} and all(s.rank >= 1 for s in top.signals)
    assert top.source.heading_path == ["Tide gauge upkeep", "Calibration"]


async def test_reingest_is_idempotent_and_a_changed_file_replaces_its_chunks_atomically(
        infra: Settings, tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    folder = write_notes(tmp_path / "notes")
    await ingest_folder(ingest_stub, folder, project="pipeline-b")
    again = await ingest_folder(ingest_stub, folder, project="pipeline-b")
    assert {f.state for f in again.files} == {ingest_pb2.FILE_STATE_UNCHANGED}

    doc = await ingest_stub.GetDocument(ingest_pb2.GetDocumentRequest(path=str(folder / "tides.md")), timeout=10)
    async with await psycopg.AsyncConnection.connect(secrets.database_url(infra), autocommit=True) as conn:
        async def snapshot() -> list[str]:
            rows = await (await conn.execute("SELECT text FROM chunks WHERE document_id = %s ORDER BY ord", (doc.document_id,))).fetchall()
            return [r[0] for r in rows]

        before = await snapshot()
        new_text = NOTES["tides.md"] + "\n## Storage\n\nIn winter the gauges are stored in the boathouse.\n" * 3
        (folder / "tides.md").write_text(new_text)
        seen: list[list[str]] = []
        task = asyncio.ensure_future(ingest_folder(ingest_stub, folder, project="pipeline-b"))
        while not task.done():
            seen.append(await snapshot())
        job = await task
        after = await snapshot()
    assert by_name(job)["tides.md"].state == ingest_pb2.FILE_STATE_EMBEDDED
    assert after != before and any("boathouse" in t for t in after)
    assert all(s in (before, after) for s in seen), "a reader saw half of the replaced document"


async def test_a_deleted_file_is_removed_on_the_next_folder_ingest(tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub,
                                                                   search_stub: search_pb2_grpc.SearchServiceStub) -> None:
    folder = write_notes(tmp_path / "notes")
    await ingest_folder(ingest_stub, folder, project="pipeline-c")
    (folder / "bread.md").unlink()
    job = await ingest_folder(ingest_stub, folder, project="pipeline-c")
    assert by_name(job)["bread.md"].state == ingest_pb2.FILE_STATE_DELETED
    reply = await search_stub.Search(search_pb2.SearchRequest(query="sourdough starter flour", mode=search_pb2.SEARCH_MODE_LEXICAL,
                                                              filters=common_pb2.Filters(project="pipeline-c")), timeout=30)
    assert all("bread" not in h.source.path for h in reply.hits)


async def test_paths_outside_the_roots_are_refused(tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    outside = Path(tempfile.mkdtemp(prefix="tessera-outside-"))
    (outside / "secret.md").write_text("# Secret\n\nnot for the index\n")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest_stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(outside)), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "outside the configured roots" in err.value.details()
    folder = write_notes(tmp_path / "notes")
    (folder / "escape.md").symlink_to(outside / "secret.md")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest_stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder / "escape.md")), timeout=10)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    job = await ingest_folder(ingest_stub, folder, project="pipeline-d")
    assert by_name(job)["escape.md"].reason == "symlink leads outside the configured roots"
    assert by_name(job)["tides.md"].state == ingest_pb2.FILE_STATE_EMBEDDED


async def test_filters_narrow_the_results(tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub,
                                          search_stub: search_pb2_grpc.SearchServiceStub) -> None:
    await ingest_folder(ingest_stub, write_notes(tmp_path / "notes"), project="")  # projects come from the frontmatter

    async def titles(**filters: object) -> list[str]:
        reply = await search_stub.Search(search_pb2.SearchRequest(query="ocean sensors harbour", top_k=20,
                                                                  filters=common_pb2.Filters(**filters)), timeout=30)  # type: ignore[arg-type]
        return [h.source.title for h in reply.hits if str(tmp_path) in h.source.path]

    assert set(await titles(project="coast")) == {"Tide gauge upkeep", "Budget meeting"}
    assert await titles(project="coast", types=["meeting"]) == ["Budget meeting"]
    assert set(await titles(tags=["ocean"])) == {"Tide gauge upkeep", "Budget meeting"}
    assert await titles(tags=["ocean", "finance"]) == ["Budget meeting"]
    from google.protobuf.timestamp_pb2 import Timestamp

    after = Timestamp()
    after.FromJsonString("2024-05-01T00:00:00Z")
    before = Timestamp()
    before.FromJsonString("2024-06-01T00:00:00Z")
    assert await titles(project="coast", created_after=after, created_before=before) == ["Budget meeting"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search_stub.Search(search_pb2.SearchRequest(query="x", filters=common_pb2.Filters(created_after=before,
                                                                                                 created_before=after)), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "must be before" in err.value.details()


async def test_odd_queries_get_an_empty_result_or_a_clear_error_and_explain_adds_up(
        tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub, search_stub: search_pb2_grpc.SearchServiceStub) -> None:
    await ingest_folder(ingest_stub, write_notes(tmp_path / "notes"), project="pipeline-q")
    scope = common_pb2.Filters(project="pipeline-q")

    async def search(query: str, mode: int = search_pb2.SEARCH_MODE_LEXICAL, explain: bool = False) -> search_pb2.SearchResponse:
        reply: search_pb2.SearchResponse = await search_stub.Search(
            search_pb2.SearchRequest(query=query, filters=scope, mode=mode, explain=explain, bypass_cache=True), timeout=30)
        return reply

    for query in ("?!…—", "the of and", "日本語のテキスト", "'; DROP TABLE postings; --", "\\x00 %s %(n)s ::", "é" * 300):
        assert (await search(query)).hits == [], query  # nothing matches; SQL never sees the text as SQL
    paragraph = ("I keep a sourdough starter on the counter and I am never sure how often it should be fed, whether the flour and "
                 "water should be equal parts, and at what temperature and for how long the loaf should bake afterwards. ") * 6
    hits = (await search(paragraph)).hits
    assert hits and hits[0].source.title == "Sourdough", "a long paragraph query still finds its note"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search("word " * 2000)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search_stub.Search(search_pb2.SearchRequest(query="kettle", filters=common_pb2.Filters(project="a\x00b")), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "NUL" in err.value.details()
    explained = await search("sourdough starter flour", search_pb2.SEARCH_MODE_HYBRID, explain=True)
    top = explained.hits[0]
    lexical = next(s for s in top.signals if s.name == "lexical")
    assert {t.term for t in lexical.terms} == {"sourdough", "starter", "flour"}
    assert sum(t.weight for t in lexical.terms) == pytest.approx(lexical.score)
    assert sum(s.contribution for s in top.signals) == pytest.approx(top.score)
    assert all(s.rank >= 1 for s in top.signals)
    plain = await search("sourdough starter flour", search_pb2.SEARCH_MODE_HYBRID)
    assert [h.source.chunk_id for h in plain.hits] == [h.source.chunk_id for h in explained.hits]
    assert all(not s.terms and s.contribution == 0 for s in plain.hits[0].signals)


async def test_the_cache_never_serves_a_stale_answer(tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub,
                                                     search_stub: search_pb2_grpc.SearchServiceStub) -> None:
    folder = write_notes(tmp_path / "notes")
    await ingest_folder(ingest_stub, folder, project="pipeline-e")
    request = search_pb2.SearchRequest(query="kayak paddle repair", filters=common_pb2.Filters(project="pipeline-e"))
    first = await search_stub.Search(request, timeout=30)
    second = await search_stub.Search(request, timeout=30)
    assert not first.cached and second.cached and second.index_generation == first.index_generation
    (folder / "kayak.md").write_text("# Kayak\n\nA cracked kayak paddle is repaired with epoxy and glass cloth.\n")
    await ingest_folder(ingest_stub, folder, project="pipeline-e")
    third = await search_stub.Search(request, timeout=30)
    assert not third.cached and third.index_generation > first.index_generation
    assert third.hits[0].source.title == "Kayak"


async def test_related_links_near_duplicates(tmp_path: Path, ingest_stub: ingest_pb2_grpc.IngestServiceStub,
                                             search_stub: search_pb2_grpc.SearchServiceStub) -> None:
    folder = tmp_path / "linked"
    folder.mkdir()
    (folder / "a.md").write_text("# Harbour radar\n\nThe harbour radar was serviced in March and the antenna was replaced.\n")
    (folder / "b.md").write_text("# Radar service\n\nIn March the harbour radar got a service and a new antenna.\n")
    (folder / "c.md").write_text("# Pancakes\n\nMix flour, eggs and milk; rest the batter for an hour.\n")
    await ingest_folder(ingest_stub, folder, project="pipeline-f")
    reply = await search_stub.Related(search_pb2.RelatedRequest(path=str(folder / "a.md")), timeout=10)
    assert [Path(r.path).name for r in reply.related] == ["b.md"] and reply.related[0].score >= 0.82
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await search_stub.Related(search_pb2.RelatedRequest(path="/nope.md"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_upload_in_frames_and_its_errors(ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    body = b"# Streamed\n\n" + b"Uploaded in several frames over a client stream. " * 50

    def frames(data: bytes, header: ingest_pb2.DocumentHeader) -> list[ingest_pb2.IngestDocumentChunk]:
        out = [ingest_pb2.IngestDocumentChunk(header=header)]
        out += [ingest_pb2.IngestDocumentChunk(data=data[i:i + 700]) for i in range(0, len(data), 700)]
        return out

    reply = await ingest_stub.IngestDocument(iter(frames(body, ingest_pb2.DocumentHeader(
        path="upload://streamed.md", project="pipeline-g", size_bytes=len(body)))), timeout=60)
    assert reply.file.state == ingest_pb2.FILE_STATE_CHUNKED and reply.file.chunks >= 1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest_stub.IngestDocument(iter(frames(body, ingest_pb2.DocumentHeader(path="upload://cut.md", size_bytes=len(body) + 5))),
                                         timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "the upload was cut" in err.value.details()
    big = b"x" * 1_100_000
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest_stub.IngestDocument(iter(frames(big, ingest_pb2.DocumentHeader(path="upload://big.txt"))), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the configured limit" in err.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await ingest_stub.IngestDocument(iter([ingest_pb2.IngestDocumentChunk(data=b"x")]), timeout=30)
    assert "first message must be the document header" in err.value.details()


async def test_a_killed_worker_loses_nothing_and_writes_once(infra: Settings, tmp_path: Path, launcher: Launcher,
                                                             mesh: dict[str, ServiceProcess],
                                                             ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    """SIGKILL the embed worker mid-document; JetStream redelivers the batch to its successor and every chunk is written once.

    The successor's sweep is pushed out of the test's window (an hour), so only redelivery can finish the document;
    the trigger counts every write of a vector, so a second write of the same chunk would show.
    """
    async with await psycopg.AsyncConnection.connect(secrets.database_url(infra, "owner"), autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS test_embed_writes (chunk_id uuid)")
        await conn.execute(
            "CREATE OR REPLACE FUNCTION test_log_embed() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO test_embed_writes VALUES (NEW.chunk_id); RETURN NEW; END $$")
        await conn.execute("CREATE OR REPLACE TRIGGER test_embed_writes AFTER INSERT ON chunk_vectors FOR EACH ROW"
                           " EXECUTE FUNCTION test_log_embed()")
        nc = await nats.connect(secrets.nats_url(infra))
        try:
            folder = long_document(tmp_path / "long", "Survey", "Part", "Observation {i} of the long field survey along the coast. " * 12, 100)
            job = await ingest_stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder), project="pipeline-h"), timeout=30)
            doc_chunks, embedded = 0, 0
            for _ in range(600):  # wait until the worker has written some, but not all, of the chunks
                row = await (await conn.execute(
                    "SELECT (SELECT count(*) FROM chunk_vectors WHERE project = 'pipeline-h'), count(*) FROM chunks WHERE project = 'pipeline-h'")).fetchone()
                assert row is not None
                embedded, doc_chunks = row
                if 0 < embedded < doc_chunks:
                    break
                await asyncio.sleep(0.05)
            assert doc_chunks > 64, "the document must span several worker sub-batches"
            assert 0 < embedded < doc_chunks, "the kill must land while the document's batch is in flight"
            in_flight = await nc.jetstream().consumer_info(EMBED_STREAM.name, DURABLE)
            assert in_flight.num_ack_pending >= 1, "the batch being embedded is delivered and not yet acknowledged"
            mesh["embed"].proc.send_signal(signal.SIGKILL)
            mesh["embed"].proc.wait(10)
            # The successor (same ports; later tests use it) sweeps only chunks queued more than an hour ago: not these.
            mesh["embed"] = launcher.start("embed", infra, TESSERA_EMBED_SWEEP_AGE_S="3600")
            await asyncio.to_thread(wait_serving, infra, [mesh["embed"]])
            final = await last_of(ingest_stub.WatchJob(ingest_pb2.GetJobRequest(job_id=job.job_id), timeout=60))
            assert final.done and final.counts.embedded == 1
            assert "embedding a redelivered batch" in mesh["embed"].output(), "JetStream must have sent the batch again"
            writes = await (await conn.execute(
                "SELECT count(*), count(DISTINCT w.chunk_id) FROM test_embed_writes w JOIN chunks c ON c.id = w.chunk_id"
                " WHERE c.project = 'pipeline-h'")).fetchone()
            assert writes == (doc_chunks, doc_chunks), "every chunk embedded exactly once"
        finally:
            await nc.close()
            await conn.execute("DROP TRIGGER IF EXISTS test_embed_writes ON chunk_vectors")


async def test_a_killed_import_started_again_finishes_with_every_chunk_once(infra: Settings, tmp_path: Path, launcher: Launcher,
                                                                           mesh: dict[str, ServiceProcess],
                                                                           ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    """SIGKILL ingest partway through a folder, start it again and ingest the same folder: every file ends embedded
    (the ones stored before the kill are 'unchanged' once their vectors are in, and wait for them until then), and every
    chunk is stored once and embedded once (a trigger logs each vector written)."""
    folder = tmp_path / "many"
    folder.mkdir()
    topics = ["tide gauges", "sourdough", "bike chains", "radar sensors", "kettles", "turbines", "orchards", "beehives"]
    for i in range(120):
        topic = topics[i % len(topics)]
        (folder / f"note-{i:03d}.md").write_text(f"# Note {i} on {topic}\n\n" + f"Entry {i}: what we learned about {topic} this week. " * 40
                                                 + f"\n\n## Follow-up {i}\n\n" + f"Item {i} to check next time for {topic}. " * 40 + "\n")
    async with await psycopg.AsyncConnection.connect(secrets.database_url(infra, "owner"), autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS test_resume_writes (chunk_id uuid)")
        await conn.execute("CREATE OR REPLACE FUNCTION test_log_resume() RETURNS trigger LANGUAGE plpgsql AS"
                           " $$ BEGIN INSERT INTO test_resume_writes VALUES (NEW.chunk_id); RETURN NEW; END $$")
        await conn.execute("CREATE OR REPLACE TRIGGER test_resume_writes AFTER INSERT ON chunk_vectors FOR EACH ROW"
                           " EXECUTE FUNCTION test_log_resume()")
        try:
            job = await ingest_stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder), project="pipeline-resume"), timeout=30)
            stored = 0
            for _ in range(1200):  # kill once some files are stored and most are not
                counts = (await ingest_stub.GetJob(ingest_pb2.GetJobRequest(job_id=job.job_id, include_files=False), timeout=10)).counts
                stored = counts.chunked + counts.embedded
                if stored >= 10:
                    break
                await asyncio.sleep(0.02)
            assert 10 <= stored < 120, f"the kill must land partway through the import ({stored} of 120 files stored)"
            mesh["ingest"].proc.send_signal(signal.SIGKILL)
            mesh["ingest"].proc.wait(10)
            before = {r[0] for r in await (await conn.execute("SELECT id FROM chunks WHERE project = 'pipeline-resume'")).fetchall()}
            # The embedding requests not yet taken are lost, as when a kill lands between a document's commit and its
            # publish: only the second import can queue those documents again (embed's sweep waits 120 s).
            nc = await nats.connect(secrets.nats_url(infra))
            try:
                await nc.jetstream().purge_stream(EMBED_STREAM.name)
            finally:
                await nc.close()
            mesh["ingest"] = launcher.start("ingest", infra, **MESH_ENV["ingest"])
            await asyncio.to_thread(wait_serving, infra, [mesh["ingest"]])
            async with mesh_channel(infra, infra.address("ingest")) as ch:
                again = await ingest_folder(ingest_pb2_grpc.IngestServiceStub(ch), folder, project="pipeline-resume")
            states = {f.state for f in again.files}
            assert states <= {ingest_pb2.FILE_STATE_EMBEDDED, ingest_pb2.FILE_STATE_UNCHANGED} and len(again.files) == 120, states
            after = {r[0] for r in await (await conn.execute("SELECT id FROM chunks WHERE project = 'pipeline-resume'")).fetchall()}
            assert len(before) >= 20 and before <= after, "the chunks stored before the kill are kept, not stored again"
            assert again.counts.chunks_embedded == again.counts.chunks
            row = await (await conn.execute(
                "SELECT (SELECT count(*) FROM documents WHERE project = 'pipeline-resume'), count(*), count(DISTINCT (c.document_id, c.ord)),"
                " (SELECT count(*) FROM chunks c2 WHERE c2.project = 'pipeline-resume' AND NOT EXISTS"
                "   (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c2.id)),"
                " (SELECT count(*) FROM test_resume_writes w JOIN chunks c3 ON c3.id = w.chunk_id WHERE c3.project = 'pipeline-resume'),"
                " (SELECT count(DISTINCT w.chunk_id) FROM test_resume_writes w JOIN chunks c4 ON c4.id = w.chunk_id"
                "   WHERE c4.project = 'pipeline-resume')"
                " FROM chunks c WHERE c.project = 'pipeline-resume'")).fetchone()
            assert row is not None
            documents, chunks, distinct, unembedded, writes, written = row
            assert documents == 120 and chunks == distinct >= 240, "each file stored once, each chunk once"
            assert unembedded == 0 and writes == written == chunks, "every chunk embedded exactly once"
        finally:
            await conn.execute("DROP TRIGGER IF EXISTS test_resume_writes ON chunk_vectors")


async def test_a_different_embedding_model_is_reported_not_mixed(infra: Settings, launcher: Launcher,
                                                                  mesh: dict[str, ServiceProcess]) -> None:
    settings = load_settings({**settings_env(infra), **service_ports(), "TESSERA_EMBED_MODEL": "some-other-model"})
    sp = launcher.start("embed", settings)
    try:
        detail = ""
        for _ in range(300):
            try:
                async with mesh_channel(settings, settings.address("embed")) as ch:
                    info = await node_grpc.NodeServiceStub(ch).GetInfo(common_pb2.GetInfoRequest(), timeout=2)
                dep = next(d for d in info.dependencies if d.name == "index_model")
                if dep.state == common_pb2.DEPENDENCY_STATE_DOWN:
                    detail = dep.detail
                    break
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)
        assert "all-MiniLM-L6-v2" in detail and "some-other-model" in detail and "never mixed" in detail
        assert not info.ready
    finally:
        sp.stop()


def test_the_cli_ingests_with_a_summary_and_finds_a_paraphrase(infra: Settings, tmp_path: Path,
                                                               mesh: dict[str, ServiceProcess]) -> None:
    folder = write_notes(tmp_path / "cli-notes")
    (folder / "broken.txt").write_bytes(b"\xff\xfe\x00bad")

    def tessera(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shared.cli", *args], cwd=ROOT, env=child_env(infra),
                              capture_output=True, text=True, timeout=300)

    out = tessera("ingest", str(folder), "--project", "pipeline-cli")
    assert out.returncode == 1, "a failed file makes the exit code non-zero"
    assert "5 files: 4 embedded, 0 unchanged, 0 removed, 1 failed" in out.stdout
    assert "broken.txt: binary file" in out.stdout
    found = tessera("search", "when should bike chains be lubricated?", "--project", "pipeline-cli", "--top-k", "3")
    assert found.returncode == 0, found.stderr
    first = found.stdout.split("\n2. ")[0]
    assert "1. bikes" in first and f"{folder / 'bikes.txt'}:1-1" in first and "lexical" in first and "vector" in first
    explained = tessera("search", "bicycle chains oil", "--project", "pipeline-cli", "--top-k", "1", "--explain")
    assert explained.returncode == 0, explained.stderr
    assert "lexical: raw " in explained.stdout and "vector: raw " in explained.stdout and "adds " in explained.stdout
    assert "chain " in explained.stdout and "bicycl " in explained.stdout, "matched terms with their weights"
    related = tessera("related", str(folder / "tides.md"))
    assert related.returncode == 0


async def test_a_large_document_takes_turns_with_the_notes_queued_after_it(infra: Settings, tmp_path: Path,
                                                                           mesh: dict[str, ServiceProcess],
                                                                           ingest_stub: ingest_pb2_grpc.IngestServiceStub) -> None:
    """A document of several turns (TESSERA_EMBED_TURN_CHUNKS: 128 in this session) goes back to the end of the queue
    after each one: a note captured after it is searchable by meaning long before the document is done."""
    folder = long_document(tmp_path / "manual", "Turbine manual", "Step",
                           "Step {i} of the turbine maintenance manual checks bolt torque and blade wear. " * 10, 600)
    job = await ingest_stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder), project="pipeline-turns"), timeout=30)
    for _ in range(600):  # the manual is stored and queued before the note is
        counts = (await ingest_stub.GetJob(ingest_pb2.GetJobRequest(job_id=job.job_id), timeout=30)).counts
        if counts.chunked + counts.embedded == 1:
            break
        await asyncio.sleep(0.05)
    note = tmp_path / "note"
    note.mkdir()
    (note / "kettle.md").write_text("# Kettle\n\nDescale the kettle with vinegar once a month.\n")
    await ingest_folder(ingest_stub, note, project="pipeline-turns-note")  # returns once the note is embedded
    async with await psycopg.AsyncConnection.connect(secrets.database_url(infra), autocommit=True) as conn:
        async def waiting() -> tuple[int, int]:
            row = await (await conn.execute("SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM chunk_vectors v WHERE v.chunk_id = c.id)),"
                                            " count(*) FROM chunks c WHERE project = 'pipeline-turns'")).fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        left, total = await waiting()
        assert total >= 600, "the manual must span several turns"
        assert left > 0, f"the note waited until all {total} chunks of the manual were embedded"
        for _ in range(1200):  # and the manual is finished in later turns
            if (await waiting())[0] == 0:
                break
            await asyncio.sleep(0.1)
        assert (await waiting())[0] == 0, "the rest of the manual was never embedded"
    assert (await last_of(ingest_stub.WatchJob(ingest_pb2.GetJobRequest(job_id=job.job_id), timeout=60))).counts.embedded == 1
