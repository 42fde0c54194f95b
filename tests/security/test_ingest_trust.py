"""What ingest reads, against the real mesh: only roots the user chose, never hidden or secret files, never through a
symlink out; and no note can freeze it (issue 28)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Launcher, ServiceProcess, service_ports, wait_serving

from services.ingest.chunk import chunk_text
from services.ingest.parse import Budget, ParseError, atx_heading, parse
from shared.client import Client
from shared.errors import PermissionDenied
from shared.gen.tessera.v1 import ingest_pb2
from shared.runtime.config import PROJECT_ROOT, Settings, load_settings, settings_env
from shared.runtime.roots import AllowedRoots, ingest_roots

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def outside() -> Iterator[Path]:
    """A folder outside every root of the session's mesh (its roots are pytest's temporary folders)."""
    with tempfile.TemporaryDirectory(prefix="tessera-outside-") as folder:
        secret = Path(folder) / "private.md"
        secret.write_text("# Private\n\nThe outside secret is zebracornsecret.\n")
        yield Path(folder)


async def ingest_raw(infra: Settings, path: Path, **kw: object) -> ingest_pb2.IngestJob:
    """IngestPath with the path exactly as given (the SDK resolves links itself; an attacker's client would not)."""
    async with Client(infra) as client:
        started = await client.call("ingest", "IngestPath", ingest_pb2.IngestPathRequest(path=str(path), **kw))  # type: ignore[arg-type]
        job = started
        async for job in client.watch_job(started.job_id):  # noqa: B007 - the last state counts
            pass
        return job


def states(job: ingest_pb2.IngestJob) -> dict[str, tuple[str, str]]:
    return {Path(f.path).name: (ingest_pb2.FileState.Name(f.state), f.reason) for f in job.files}


def test_the_default_roots_are_the_data_directory_only(tmp_path: Path) -> None:
    """Hole: the default roots were the home folder and the folder above the checkout (in the image, /root and /)."""
    settings = load_settings({"TESSERA_DATA_DIR": str(tmp_path / "data")})
    roots = AllowedRoots(ingest_roots(settings), component="ingest", setting="TESSERA_INGEST_ROOTS")
    assert set(roots) == {(tmp_path / "data" / "notes").resolve(), (tmp_path / "data" / "imports").resolve()}
    for far in (Path.home() / ".ssh" / "id_rsa", PROJECT_ROOT / ".env", PROJECT_ROOT / "README.md", Path("/etc/passwd")):
        assert not roots.allows(far)
    mine = load_settings({"TESSERA_DATA_DIR": str(tmp_path / "data"), "TESSERA_INGEST_ROOTS": str(tmp_path / "notes")})
    assert (tmp_path / "notes").resolve() in set(AllowedRoots(ingest_roots(mine), component="ingest", setting=""))
    with pytest.raises(PermissionDenied, match="may not be a root"):
        AllowedRoots(["/proc/self"], component="ingest", setting="TESSERA_INGEST_ROOTS")


@pytest.mark.parametrize("name", [".env", ".env.production", "id_rsa", "id_ed25519.pub", "server.pem", "tls.key", ".ssh/config",
                                  ".gnupg/pubring.kbx", "token", ".netrc"])
async def test_a_secret_or_hidden_file_named_directly_is_refused(infra: Settings, mesh: dict[str, ServiceProcess],
                                                                  tmp_path: Path, name: str) -> None:
    """Hole: hidden files were skipped in a folder walk, but read when the file was named directly."""
    target = tmp_path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("AWS_SECRET_ACCESS_KEY=hunter2-very-secret\n")
    async with Client(infra) as client:
        with pytest.raises(PermissionDenied, match=r"secret|hidden"):
            await client.call("ingest", "IngestPath", ingest_pb2.IngestPathRequest(path=str(target)))


async def test_a_folder_walk_with_every_file_included_still_skips_secrets(infra: Settings, mesh: dict[str, ServiceProcess],
                                                                          tmp_path: Path) -> None:
    (tmp_path / "ok.md").write_text("# Fine\n\nA plain note about walkable things.\n")
    (tmp_path / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    job = await ingest_raw(infra, tmp_path, include=["*"])
    got = states(job)
    assert got["ok.md"][0] == "FILE_STATE_EMBEDDED"
    for secret in ("id_rsa", "cert.pem"):
        assert got[secret][0] == "FILE_STATE_FAILED" and "secret" in got[secret][1], got


async def test_an_upload_named_like_a_secret_is_refused(infra: Settings, mesh: dict[str, ServiceProcess]) -> None:
    async with Client(infra) as client:
        for name in (".env", "deploy/id_rsa", "keys/service.pem"):
            with pytest.raises(PermissionDenied):
                await client.upload(name, b"SECRET=1\n")


async def test_a_symlink_out_of_the_root_is_never_followed(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path,
                                                           outside: Path) -> None:
    """Hole: links were checked by name, then opened later. In a folder, named directly, or swapped in after the check."""
    (tmp_path / "leak.md").symlink_to(outside / "private.md")
    (tmp_path / "fine.md").write_text("# Fine\n\nNothing to see here.\n")
    job = await ingest_raw(infra, tmp_path)
    got = states(job)
    assert got["leak.md"][0] == "FILE_STATE_FAILED" and "outside" in got["leak.md"][1], got
    async with Client(infra) as client:
        with pytest.raises(PermissionDenied):
            await client.call("ingest", "IngestPath", ingest_pb2.IngestPathRequest(path=str(tmp_path / "leak.md")))
        reply = await client.search("zebracornsecret", mode="lexical", bypass_cache=True)
    assert not reply.hits
    # The race: the name is a plain file when checked, a link when opened. What was opened is checked.
    roots = AllowedRoots([tmp_path], component="ingest", setting="TESSERA_INGEST_ROOTS")
    swap = tmp_path / "swap.md"
    swap.write_text("# Plain\n\nplain\n")
    assert roots.check(swap) == swap
    swap.unlink()
    swap.symlink_to(outside / "private.md")
    with pytest.raises(PermissionDenied, match="symlink"):
        roots.open(swap)
    inner = tmp_path / "sub"
    inner.symlink_to(outside, target_is_directory=True)  # a linked folder on the way: the opened file's real path is outside
    with pytest.raises(PermissionDenied, match="outside"):
        roots.open(inner / "private.md")


@pytest.fixture
def watcher(infra: Settings, mesh: dict[str, ServiceProcess], launcher: Launcher, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[Settings, Path]]:
    root = tmp_path_factory.mktemp("watched-trust")
    ports = service_ports()
    settings = load_settings({**settings_env(infra), "TESSERA_INGEST_PORT": ports["TESSERA_INGEST_PORT"],
                              "TESSERA_INGEST_METRICS_PORT": ports["TESSERA_INGEST_METRICS_PORT"], "TESSERA_WATCH_ROOTS": str(root),
                              "TESSERA_WATCH_DEBOUNCE_MS": "100"})
    proc = launcher.start("ingest", settings)
    wait_serving(settings, [proc])
    yield settings, root
    proc.stop()


async def test_the_watcher_reads_no_link_out_and_no_secret(infra: Settings, watcher: tuple[Settings, Path], outside: Path) -> None:
    """Hole: the folder watcher skipped the roots check and followed symlinks."""
    _, root = watcher
    (root / "leak.md").symlink_to(outside / "private.md")
    (root / ".env.md").write_text("# Env\n\nAPI_TOKEN wombatsecretvalue\n")
    (root / "canary.md").write_text("# Canary\n\nThe watched canary word is quokkafern.\n")
    async with Client(infra) as client:
        for _ in range(300):  # the canary shows the watcher has handled the batch
            if (await client.search("quokkafern", mode="lexical", bypass_cache=True)).hits:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the watcher never ingested the canary")
        await asyncio.sleep(1.0)
        for word in ("zebracornsecret", "wombatsecretvalue"):
            assert not (await client.search(word, mode="lexical", bypass_cache=True)).hits, word


#: Lines that made a step super-linear, or could: parse and chunk must take time in proportion to the size. (Each is
#: kept to a few thousand tokens: the vectors are the embed service's work, not what is under test; bench-parse
#: times every step on 1 MB lines.)
ADVERSARIAL = {
    "spaces-heading.md": "# a" + " " * 100_000 + "b\n\nbody\n",  # cubic for the old pattern: each split of the spaces tried
    "heading-spaces.md": "#" + " " * 100_000 + "\n\nbody after a heading of spaces\n",
    "hashes.md": "# title " + "#" * 10_000 + "x\n\nbody\n",
    "emphasis.md": "*" * 5_000 + "a" + "_" * 5_000 + "\n\n" + "**a " * 2_000 + "\n",
    "fence.md": "```\n" + "unclosed fence line\n" * 1_000,
    "one-line.md": "word " * 4_000 + "\n",
    "sentences.md": ". " * 4_000 + "\n",
    "brackets.md": "." + ")" * 4_000 + " \n",
    "tabs.md": "#\t" + "\t " * 50_000 + "#\n\nbody\n",
}


async def test_adversarial_lines_cannot_freeze_ingest(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    """Hole: `^#\\s+(.+?)\\s*#*\\s*$` was cubic in a line of spaces (10,000 spaces: about 25 minutes). Each file here
    used to stop ingest for good; now each is parsed and chunked in linear time."""
    for name, text in ADVERSARIAL.items():
        (tmp_path / name).write_text(text)
    job = await asyncio.wait_for(ingest_raw(infra, tmp_path), 180)
    got = states(job)
    assert {n for n, (state, _) in got.items() if state != "FILE_STATE_EMBEDDED"} == set(), got


def test_a_file_over_its_time_budget_fails_with_the_reason() -> None:
    ticks = iter(range(1_000_000))
    budget = Budget(5.0, clock=lambda: float(next(ticks)))  # every check is a second later
    text = "\n\n".join(f"# Part {i}\n\nSome words here." for i in range(50))
    with pytest.raises(ParseError, match=r"time budget of 5\.0 s"):
        chunk_text(text, tokenizer=lambda texts: [[(0, len(t))] for t in texts], budget=budget)
    assert parse(b"# Fine\n\nok\n", "fine.md", budget=Budget(5.0)).title == "Fine"


def test_the_heading_parser_agrees_with_the_old_pattern_on_ordinary_lines() -> None:
    old = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
    for line in ["# Title", "## Two words ##", "###### six", "####### seven", "#no space", "# a #b", "#\ttab", "# #",
                 "## trailing   ", "# Ünïcode ✓", "#  spaced  title  ###  "]:
        m = old.match(line.strip())
        assert atx_heading(line.strip()) == ((len(m.group(1)), m.group(2)) if m else None), line
    assert atx_heading("#" + " " * 100_000) is None
    assert os.path.sep == "/"
