"""Big inputs: a 200 MB PDF and a 20 MB markdown file, made by the test, ingested from a folder.

Ingest reads them a slice (TESSERA_INGEST_BATCH_BYTES, 2 MiB here) at a time: its peak resident memory during the job
grows by less than the markdown file's size less a slice (18 MiB for 220 MB of input), so an ingest that read either
file whole would fail it. A file over TESSERA_INGEST_MAX_BYTES fails with its reason, and the
other files of the folder are ingested. The ingest process here is a second one, on its own NATS (the session's
embed worker never sees these documents, which are deleted at the end), writing to the session's database, where
the session's search service finds what it wrote.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Launcher, ServiceProcess, mesh_channel, service_ports, wait_serving

from shared.client import Client
from shared.gen.tessera.v1 import ingest_pb2, ingest_pb2_grpc
from shared.ops.infra import Nats, free_port
from shared.runtime.config import Settings, load_settings, settings_env

BATCH = 2 * 1024 * 1024
MD_BYTES = int(os.environ.get("TESSERA_TEST_BIG_MD_MB", "20")) * 1024 * 1024
PDF_BYTES = 200 * 1024 * 1024
LIMIT = 256 * 1024 * 1024


def write_markdown(path: Path, size: int) -> str:
    """About ``size`` bytes: sections of twenty paragraphs; the last section holds a unique token. Returns the token."""
    token = "zebrafinchlastsection"
    words = ["kettle", "vinegar", "descale", "chain", "lubricate", "bicycle", "sourdough", "starter", "flour", "water", "oven",
             "bread", "compost", "garden", "tomato", "basil", "pruning", "winter", "battery", "voltage", "solder", "resistor"]
    with path.open("w") as f:
        f.write("---\ntitle: Very large notes\ntags: [big]\n---\n# Very large notes\n\n")
        i, written = 0, 0
        while written < size:
            block = f"## Section {i}\n\n" + "".join(
                " ".join(words[(i * 7 + j * 3 + k) % len(words)] for k in range(150)) + ".\n\n" for j in range(20))
            f.write(block)
            written += len(block)
            i += 1
        f.write(f"## The end\n\nThe last section mentions the {token} exactly once.\n")
    return token


def write_pdf(path: Path, size: int) -> str:
    """A PDF of about ``size`` bytes: three pages of text and one page with a large image. Returns a token on page 3."""
    token = "quetzalpagethree"
    texts = ["Page one of the large PDF is about descaling kettles.", "Page two lubricates bicycle chains.",
             f"Page three names the {token}."]
    image_bytes = size - 4096
    offsets: list[int] = []
    with path.open("wb") as f:
        def obj(body: bytes) -> None:
            offsets.append(f.tell())
            f.write(f"{len(offsets)} 0 obj\n".encode() + body + b"\nendobj\n")

        f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        obj(b"<< /Type /Catalog /Pages 2 0 R >>")
        kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(4))
        obj(f"<< /Type /Pages /Kids [{kids}] /Count 4 >>".encode())
        obj(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")  # 3
        for i in range(4):
            content = (f"BT /F1 12 Tf 72 720 Td ({texts[i]}) Tj ET" if i < 3 else "q 100 0 0 100 72 600 cm /Im1 Do Q").encode()
            resources = "/Font << /F1 3 0 R >>" + (" /XObject << /Im1 12 0 R >>" if i == 3 else "")
            obj(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << {resources} >> /Contents {5 + 2 * i} 0 R >>".encode())
            obj(f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream")
        side = int((image_bytes / 3) ** 0.5)
        offsets.append(f.tell())  # 12: the image, written in pieces (never whole in memory)
        f.write(f"12 0 obj\n<< /Type /XObject /Subtype /Image /Width {side} /Height {side} /ColorSpace /DeviceRGB "
                f"/BitsPerComponent 8 /Length {side * side * 3} >>\nstream\n".encode())
        left, piece = side * side * 3, bytes(range(256)) * 4096
        while left > 0:
            f.write(piece[:min(left, len(piece))])
            left -= min(left, len(piece))
        f.write(b"\nendstream\nendobj\n")
        xref = f.tell()
        f.write(f"xref\n0 {len(offsets) + 1}\n0000000000 65535 f \n".encode())
        for off in offsets:
            f.write(f"{off:010d} 00000 n \n".encode())
        f.write(f"trailer\n<< /Size {len(offsets) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return token


def rss_and_peak(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


@pytest.fixture(scope="module")
def big_ingest(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, ServiceProcess]]:
    root = tmp_path_factory.mktemp("big-nats")
    nats = Nats("nats", root, free_port())
    nats.start()
    ports = service_ports()
    env = {**settings_env(infra), "TESSERA_INGEST_PORT": ports["TESSERA_INGEST_PORT"], "TESSERA_INGEST_METRICS_PORT": str(free_port()),
           "TESSERA_NATS_URL": f"nats://127.0.0.1:{nats.port}", "TESSERA_INGEST_MAX_BYTES": str(LIMIT),
           "TESSERA_INGEST_BATCH_BYTES": str(BATCH), "TESSERA_LOG_LEVEL": "info"}
    settings = load_settings(env)
    proc = launcher.start("ingest", settings, MALLOC_ARENA_MAX="2", TOKENIZERS_PARALLELISM="false")
    wait_serving(settings, [proc])
    yield settings, proc
    proc.stop()
    nats.stop()


async def test_big_files_stream_through_ingest(infra: Settings, big_ingest: tuple[Settings, ServiceProcess],
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    settings, proc = big_ingest
    folder = tmp_path_factory.mktemp("big-inputs")
    md_token = await asyncio.to_thread(write_markdown, folder / "large-notes.md", MD_BYTES)
    pdf_token = await asyncio.to_thread(write_pdf, folder / "large.pdf", PDF_BYTES)
    (folder / "small.md").write_text("# Small\n\nA small note beside the big ones mentions a wombatsmall.\n")
    with (folder / "too-big.txt").open("wb") as f:
        f.truncate(LIMIT + 1)  # sparse: over the limit without using the disk
    pid = proc.proc.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    base, _ = rss_and_peak(pid)

    async with mesh_channel(settings, settings.address("ingest")) as ch:
        stub = ingest_pb2_grpc.IngestServiceStub(ch)
        started = await stub.IngestPath(ingest_pb2.IngestPathRequest(path=str(folder), project="big"), timeout=30)
        try:
            await check_the_job(stub, started.job_id, infra, folder, pid, base, md_token, pdf_token)
        finally:
            # Whatever the outcome: left behind, the big documents' 5,000 chunks would reach the session's embed worker
            # through its sweep, and every later test's notes would wait behind them (CI, stop 25).
            job = await stub.GetJob(ingest_pb2.GetJobRequest(job_id=started.job_id, include_files=True), timeout=30)
            for f in job.files:
                if f.document_id:
                    await stub.DeleteDocument(ingest_pb2.DeleteDocumentRequest(document_id=f.document_id), timeout=60)


async def check_the_job(stub: ingest_pb2_grpc.IngestServiceStub, job_id: str, infra: Settings, folder: Path, pid: int, base: int,
                        md_token: str, pdf_token: str) -> None:
    """The job's file states, the peak memory, and what the session's search finds of it."""
    stored = {ingest_pb2.FILE_STATE_CHUNKED, ingest_pb2.FILE_STATE_FAILED, ingest_pb2.FILE_STATE_UNCHANGED}
    for _ in range(1200):  # until every file is stored or failed (no embed worker listens on this NATS: none gets embedded)
        job = await stub.GetJob(ingest_pb2.GetJobRequest(job_id=job_id, include_files=True), timeout=30)
        if job.files and all(f.state in stored for f in job.files):
            break
        await asyncio.sleep(0.25)
    _, peak = rss_and_peak(pid)
    states = {Path(f.path).name: (ingest_pb2.FileState.Name(f.state), f.reason, f.chunks) for f in job.files}
    assert states["too-big.txt"][0] == "FILE_STATE_FAILED" and "over the configured limit" in states["too-big.txt"][1], states
    for name in ("large-notes.md", "large.pdf", "small.md"):
        assert states[name][0] == "FILE_STATE_CHUNKED", states  # embedding is the (absent) embed worker's job
    assert states["large-notes.md"][2] > MD_BYTES // 4096 and states["large.pdf"][2] >= 1

    growth = peak - base
    print(f"ingest RSS {base >> 20} MiB, peak {peak >> 20} MiB: +{growth >> 20} MiB for a {MD_BYTES >> 20} MiB markdown file and a "
          f"{PDF_BYTES >> 20} MiB PDF, read in {BATCH >> 20} MiB slices ({growth / BATCH:.1f}x a slice)")
    # Measured +13 MiB (6.8x the slice). Reading either file whole would add at least its size (20 MiB, 200 MiB): over the bound.
    bound = MD_BYTES - BATCH
    assert growth < bound, f"peak grew by {growth >> 20} MiB: over {bound >> 20} MiB ({BATCH >> 20} MiB slices of a {MD_BYTES >> 20} MiB file)"

    async with Client(infra) as client:  # the session's search reads what this ingest wrote
        end = await client.search(md_token, mode="lexical", project="big")
        assert end.hits and end.hits[0].source.path.endswith("large-notes.md")
        lines = sum(1 for _ in (folder / "large-notes.md").open())
        assert end.hits[0].source.line_end >= lines - 1  # the offsets of the last slice are right
        page3 = await client.search(pdf_token, mode="lexical", project="big")
        assert page3.hits and page3.hits[0].source.path.endswith("large.pdf")
        small = await client.search("wombatsmall", mode="lexical", project="big")
        assert small.hits
