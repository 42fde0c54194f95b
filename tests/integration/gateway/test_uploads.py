"""Resumable uploads (tus 1.0 at /api/v1/uploads) against the session's gateway: an upload cut at 60 % by a closed
connection goes on from where it stopped and stores the same bytes, then is ingested; the command line resumes after
being killed; each refusal (a bad checksum, a wrong offset, past the length, over the limit, no key, another origin)
keeps nothing of the request."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from helpers import ADMIN, ROOT, ServiceProcess, child_env, filler

from shared.client import Client
from shared.runtime.config import Settings

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {"Content-Type": "application/offset+octet-stream"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def note(kib: int, word: str) -> bytes:
    """A markdown note of about ``kib`` KiB whose text names ``word``."""
    return filler(word, kib * 1024)


@pytest.fixture
def gw(infra: Settings, mesh: dict[str, ServiceProcess]) -> str:
    return f"http://127.0.0.1:{infra.gateway_port}"


async def create(http: httpx.AsyncClient, size: int, name: str, project: str = "") -> str:
    meta = f"filename {b64(name)}" + (f",project {b64(project)}" if project else "")
    r = await http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(size), "Upload-Metadata": meta})
    assert r.status_code == 201 and r.headers["Tus-Resumable"] == "1.0.0", r.text
    return r.headers["Location"]


async def offset_of(http: httpx.AsyncClient, url: str) -> int:
    r = await http.head(url, headers=TUS)
    assert r.status_code == 200, r.status_code
    return int(r.headers["Upload-Offset"])


async def test_an_upload_cut_at_60_percent_resumes_and_is_ingested(gw: str, infra: Settings) -> None:
    data = note(600, "barometer")
    cut = len(data) * 6 // 10

    async def until_cut() -> AsyncIterator[bytes]:
        for i in range(0, cut, 64 * 1024):
            yield data[i:min(i + 64 * 1024, cut)]
        raise ConnectionResetError("the connection closes at 60 %")

    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=60) as http:
        options = await http.options("/api/v1/uploads")
        assert options.status_code == 204 and "creation" in options.headers["Tus-Extension"] and "sha1" in options.headers["Tus-Checksum-Algorithm"]
        url = await create(http, len(data), "../../etc/barometer.md", "uploads-test")
        with pytest.raises((httpx.HTTPError, ConnectionResetError)):
            await http.patch(url, content=until_cut(), headers={**TUS, **PATCH, "Upload-Offset": "0"})
        end = time.monotonic() + 10
        while (at := await offset_of(http, url)) < cut:  # the server may still be writing what was sent
            if time.monotonic() > end:
                break
            await asyncio.sleep(0.1)
        assert 0 < at <= cut, (at, cut)
        rest = data[at:]
        done = await http.patch(url, content=rest, headers={**TUS, **PATCH, "Upload-Offset": str(at),
                                                             "Upload-Checksum": "sha1 " + base64.b64encode(hashlib.sha1(rest).digest()).decode()})
        assert done.status_code == 204 and int(done.headers["Upload-Offset"]) == len(data), done.text
        job_id = done.headers["Tessera-Job-Id"]
        assert (await http.head(url, headers=TUS)).status_code == 404  # complete: it left the uploads
    stored = infra.path("imports", "uploads") / f"{url.rsplit('/', 1)[1][:8]}-barometer.md"  # the name's last part only
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    async with Client(infra) as client:
        async for _ in client.watch_job(job_id, include_files=False):
            pass
        job = await client.job(job_id)
        assert job.counts.embedded == 1 and job.project == "uploads-test", job
        hits = (await client.search("barometer sensor readings", project="uploads-test")).hits
        assert hits and hits[0].source.path == str(stored)


async def test_each_refusal_keeps_nothing_of_its_request(gw: str, infra: Settings) -> None:
    data = note(40, "anemometer")
    async with httpx.AsyncClient(base_url=gw, headers=ADMIN, timeout=60) as http:
        url = await create(http, len(data), "anemometer.md")
        first = data[:10_000]
        ok = await http.patch(url, content=first, headers={**TUS, **PATCH, "Upload-Offset": "0"})
        assert ok.status_code == 204 and ok.headers["Upload-Offset"] == "10000"
        cases = [
            ({"Upload-Offset": "10000", "Upload-Checksum": "sha1 " + base64.b64encode(b"\0" * 20).decode()}, data[10_000:20_000], 460, "Checksum"),
            ({"Upload-Offset": "5000"}, data[5_000:6_000], 409, "resume from there"),
            ({"Upload-Offset": "10000"}, data[10_000:] + b"one byte too many", 400, "past the upload's length"),
            ({"Upload-Offset": "10000", "Upload-Checksum": "crc32 AAAA"}, data[10_000:11_000], 400, "checksum algorithm"),
        ]
        for headers, body, status, words in cases:
            r = await http.patch(url, content=body, headers={**TUS, **PATCH, **headers})
            assert r.status_code == status and words in r.json()["error"]["message"], (status, r.text)
            assert await offset_of(http, url) == 10_000
        no_tus = await http.patch(url, content=b"x", headers={**PATCH, "Upload-Offset": "10000"})
        assert no_tus.status_code == 412 and "Tus-Resumable" in no_tus.json()["error"]["message"]
        wrong_type = await http.patch(url, content=b"x", headers={**TUS, "Content-Type": "application/json", "Upload-Offset": "10000"})
        assert wrong_type.status_code == 415
        huge = await http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(infra.gateway.upload_max_bytes + 1),
                                                            "Upload-Metadata": f"filename {b64('huge.md')}"})
        assert huge.status_code == 413 and "TESSERA_GATEWAY_UPLOAD_MAX_BYTES" in huge.json()["error"]["message"]
        nameless = await http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": f"filename {b64('/..')}"})
        assert nameless.status_code == 400 and "filename" in nameless.json()["error"]["message"]
        # another origin, or no key: refused at the edge, the upload untouched
        for extra, status in (({"Origin": "http://attacker.example"}, 403), ({"Authorization": ""}, 401)):
            r = await http.patch(url, content=data[10_000:], headers={**TUS, **PATCH, "Upload-Offset": "10000", **extra})
            assert r.status_code == status, r.text
            assert await offset_of(http, url) == 10_000
        # termination
        assert (await http.delete(url, headers=TUS)).status_code == 204
        assert (await http.head(url, headers=TUS)).status_code == 404
        assert (await http.head("/api/v1/uploads/not-an-id", headers=TUS)).status_code == 404


def test_the_command_line_resumes_after_it_is_killed(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    """`tessera ingest --upload` killed part way; run again, it asks where the upload stands and sends only the rest."""
    source = tmp_path / "hygrometer.md"
    source.write_bytes(note(500, "hygrometer"))
    env = {**child_env(infra), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "shared.cli", "ingest", "--upload", str(source), "--project", "uploads-cli", "--part-mb", "0.02"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("uploaded ") and "(0/" not in line and int(line.split("(")[1].split("/")[0]) > 100_000:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the upload finished before it could be killed"
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming at" in again.stdout and "1 embedded" in again.stdout, again.stdout
    stored = next((infra.path("imports", "uploads")).glob("*-hygrometer.md"))
    assert stored.read_bytes() == source.read_bytes()
    assert not any((tmp_path / "cache" / "tessera" / "uploads").iterdir())  # its resume note is gone once done
