"""Snapshots of a knowledge base: the database in one transaction, the files Tessera holds, and a manifest.

A snapshot is a folder ``<when>-<id>/`` (by default under ``<data_dir>/snapshots``; copy it off the machine to keep it):

- ``db.dump``: ``pg_dump --format=custom`` of the database, as the backup role, in one repeatable-read transaction.
  Every table is in it, embeddings included, so a restore embeds nothing again. Roles and their passwords are not
  (a restore makes new ones); the pgvector extension is created by the server, not by the dump.
- ``files.tar.gz``: the notes Tessera wrote (captures, ``TESSERA_NOTES_DIR`` or ``<data_dir>/notes``) and the files under
  ``<data_dir>/imports``. Folders ingested from elsewhere (``TESSERA_INGEST_ROOTS``) are the user's, not copied.
- ``manifest.json``: the format, when, the app and schema versions, the embedding model, the folders the files came
  from, counts, and each file's size and sha256.

With a passphrase or key (``TESSERA_SNAPSHOT_KEY_FILE``, or ``--key-file``), ``db.dump`` and ``files.tar.gz`` are
encrypted as they are written (shared/ops/seal.py: AES-256-GCM in segments, the key from scrypt; nothing plain touches
the disk) and the manifest says how (``encryption``: scheme, salt, a key check); verify and restore then need it.

It is written into a hidden ``.<name>.partial`` folder and renamed when complete, so a snapshot cut short (a crash, a
kill, a full disk) is never listed, verified or restored. Everything is 0600 in a 0700 folder: a snapshot holds every
note. Generated credentials are never in a snapshot.

Restoring is shared/ops/restore.py.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import secrets as _random
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from shared.errors import TesseraError
from shared.ops import seal
from shared.runtime import secrets
from shared.runtime.config import Settings
from shared.runtime.db import MIGRATIONS_DIR, migration_files
from shared.runtime.files import file_sha256

FORMAT = 1
DUMP, FILES, MANIFEST = "db.dump", "files.tar.gz", "manifest.json"
PARTIAL = ".partial"
#: Tables whose counts the manifest records (and restore checks).
COUNTED = ("documents", "chunks", "chunk_vectors", "conversations", "messages")
#: Columns that hold a path inside the folders a snapshot carries: moved on restore to this data directory's folders.
PATH_COLUMNS = (("documents", "path"), ("ingest_files", "path"), ("ingest_jobs", "root"))


class SnapshotError(TesseraError):
    """A snapshot that cannot be made, verified or restored, with the reason."""


@dataclass(frozen=True)
class Folders:
    """The folders whose files a snapshot carries, by name inside ``files.tar.gz``."""

    notes: Path
    imports: Path

    @staticmethod
    def of(settings: Settings) -> Folders:
        notes = Path(settings.gateway.notes_dir).expanduser() if settings.gateway.notes_dir else settings.path("notes")
        return Folders(notes=notes.resolve(), imports=settings.path("imports"))

    def items(self) -> list[tuple[str, Path]]:
        return [("notes", self.notes), ("imports", self.imports)]


def default_dir(settings: Settings) -> Path:
    """TESSERA_SNAPSHOT_DIR, or <data_dir>/snapshots."""
    return Path(settings.knowledge.snapshot_dir).expanduser().resolve() if settings.knowledge.snapshot_dir else settings.path("snapshots")


def period_s(settings: Settings) -> float | None:
    """TESSERA_SNAPSHOT_EVERY in seconds; None when scheduled snapshots are off."""
    from shared.contracts import window_days
    from shared.errors import ConfigError, InvalidArgument

    every = settings.knowledge.snapshot_every.strip().lower()
    if every in ("", "off", "0", "no", "false"):
        return None
    try:
        seconds = window_days(every) * 86_400
    except InvalidArgument:
        seconds = 0.0
    if seconds < 60:
        raise ConfigError("TESSERA_SNAPSHOT_EVERY", f"{every!r} is not a period of a minute or more (like 1d, 12h or 1w), nor off")
    return seconds


def due(settings: Settings, every_s: float, into: Path | None = None) -> bool:
    """No complete snapshot in the folder is younger than ``every_s``."""
    newest = next(iter(listed(settings, into)), None)
    if newest is None:
        return True
    made = dt.datetime.fromisoformat(newest["created_at"])
    return (dt.datetime.now(dt.UTC) - made).total_seconds() >= every_s


def prune(settings: Settings, keep: int, into: Path | None = None, partial_after_s: float = 86_400) -> list[Path]:
    """Delete the complete snapshots beyond the newest ``keep``, and partial folders older than ``partial_after_s`` (a
    snapshot cut short); the paths deleted."""
    root = (into or default_dir(settings)).resolve()
    gone = [Path(m["path"]) for m in listed(settings, root)[max(keep, 1):]]
    now = dt.datetime.now().timestamp()
    gone += [p for p in (root.iterdir() if root.is_dir() else []) if p.name.startswith(".") and p.name.endswith(PARTIAL)
             and now - p.stat().st_mtime > partial_after_s]
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)
    return gone


def last_json(settings: Settings) -> dict[str, Any]:
    """What the status page shows: the schedule, and the newest snapshot (or none)."""
    found = listed(settings)
    newest = found[0] if found else None
    return {"every": settings.knowledge.snapshot_every, "keep": settings.knowledge.snapshot_keep, "dir": str(default_dir(settings)),
            "count": len(found),
            "last": None if newest is None else {
                "name": newest["name"], "created_at": newest["created_at"], "path": newest["path"],
                "bytes": sum(int(f.get("bytes", 0)) for f in newest.get("files", {}).values()),
                "documents": newest.get("counts", {}).get("documents", 0)}}


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pg_bin(name: str) -> str:
    from shared.ops.postgres import _pg_package

    return str(_pg_package()[0] / name)


def pg_args(settings: Settings, role: secrets.PgRole) -> tuple[list[str], dict[str, str]]:
    """Connection arguments and environment for a PostgreSQL client program as ``role``: the password travels in the
    environment (never on a command line another user could read in ps)."""
    url = urlsplit(secrets.database_url(settings, role))
    args = ["--host", url.hostname or "127.0.0.1", "--port", str(url.port or 5432), "--username", unquote(url.username or ""),
            "--dbname", url.path.lstrip("/") or "tessera", "--no-password"]
    env = {**os.environ, "PGPASSWORD": unquote(url.password or ""), "PGCONNECT_TIMEOUT": "10"}
    return args, env


def _run(args: list[str], env: dict[str, str], what: str, timeout: float = 3600) -> None:
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, cwd="/")
    if result.returncode != 0:
        raise SnapshotError(f"snapshot: {what} failed: {(result.stderr or result.stdout).strip()[-600:]}")


def database_facts(settings: Settings) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(secrets.database_url(settings, "backup"), autocommit=True, connect_timeout=10) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()]
        counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in COUNTED}  # type: ignore[index]
        models = [r[0] for r in conn.execute("SELECT DISTINCT model_id FROM chunk_vectors ORDER BY 1").fetchall()]
    return {"schema_version": max(versions, default=0), "counts": counts, "embedding_models": models}


def configured_secret(settings: Settings, key_file: str = "") -> bytes | None:
    """The passphrase or key snapshots are encrypted with: ``key_file``, else TESSERA_SNAPSHOT_KEY_FILE; None: neither."""
    chosen = key_file or settings.knowledge.snapshot_key_file
    try:
        return seal.read_passphrase(Path(chosen).expanduser()) if chosen else None
    except seal.SealError as exc:
        raise SnapshotError(str(exc)) from None


def _dump(settings: Settings, dest: Path, key: bytes | None) -> None:
    """pg_dump as the backup role, in one transaction, into ``dest`` (sealed as it streams when ``key``)."""
    args, env = pg_args(settings, "backup")
    # one transaction (pg_dump's own repeatable-read snapshot); the extension belongs to the server, not the dump
    command = [pg_bin("pg_dump"), *args, "--format=custom", "--no-owner", "--no-privileges", "--exclude-extension=vector"]
    if key is None:
        _run([*command, "--file", str(dest)], env, "pg_dump")
        return
    with tempfile.TemporaryFile() as errors, seal.SealedWriter(dest.open("wb"), key, DUMP) as out:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env, cwd="/")
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            out.write(chunk)
        if proc.wait() != 0:
            errors.seek(0)
            raise SnapshotError(f"snapshot: pg_dump failed: {errors.read().decode(errors='replace').strip()[-600:]}")


def create(settings: Settings, into: Path | None = None, secret: bytes | None = None) -> Path:
    """Make a snapshot (encrypted with ``secret``, a passphrase or key, when given); its folder's path. A failure leaves
    no snapshot (only a ``.partial`` folder, never listed)."""
    from importlib.metadata import version

    root = (into or default_dir(settings)).resolve()
    _private_dir(root)
    now = dt.datetime.now(dt.UTC)
    name = f"{now:%Y%m%dT%H%M%SZ}-{_random.token_hex(3)}"
    work = root / f".{name}{PARTIAL}"
    _private_dir(work)
    old_umask = os.umask(0o077)
    try:
        facts = database_facts(settings)
        encryption: dict[str, Any] = {}
        key = None
        if secret is not None:
            encryption = seal.new_params()
            key = seal.derive(secret, encryption)
            encryption["check"] = seal.key_check(key)
        _dump(settings, work / DUMP, key)
        folders = Folders.of(settings)
        sink: seal.SealedWriter | BinaryIO = seal.SealedWriter((work / FILES).open("wb"), key, FILES) if key else (work / FILES).open("wb")
        # gzip level 6 (tarfile's stream mode has 9, much slower for the same size on text), streamed: never all in memory
        with sink, gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
            for arcname, folder in folders.items():
                if folder.is_dir():
                    tar.add(folder, arcname=arcname, filter=_regular_only)
        files = {}
        for part in (DUMP, FILES):
            (work / part).chmod(0o600)
            _fsync(work / part)
            files[part] = {"bytes": (work / part).stat().st_size, "sha256": file_sha256(work / part)}
        manifest = {"format": FORMAT, "name": name, "created_at": now.isoformat(), "app_version": version("tessera"),
                    **facts, "folders": {k: str(v) for k, v in folders.items()}, "files": files,
                    **({"encryption": encryption} if encryption else {})}
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        (work / MANIFEST).chmod(0o600)
        _fsync(work / MANIFEST)
        final = root / name
        work.rename(final)
        _fsync(root)
        return final
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        os.umask(old_umask)


def _regular_only(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Files and folders only: a link in the notes folder could point anywhere."""
    return info if info.isfile() or info.isdir() else None


def listed(settings: Settings, into: Path | None = None) -> list[dict[str, Any]]:
    """The complete snapshots of a folder, newest first: each one's manifest with its ``path``. A ``.partial`` folder
    (a snapshot cut short) is never one of them."""
    root = (into or default_dir(settings)).resolve()
    out = []
    for path in sorted(root.iterdir(), reverse=True) if root.is_dir() else []:
        if path.name.startswith(".") or not (path / MANIFEST).is_file():
            continue
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        out.append({**manifest, "path": str(path)})
    return out


def verify(path: Path, secret: bytes | None = None) -> dict[str, Any]:
    """The snapshot's manifest once every file is there with its size and sha256 and the dump and the files read back;
    else SnapshotError with the first thing wrong. An encrypted snapshot's contents are read with ``secret`` only;
    without it, the manifest says ``contents_checked: false`` (its files still match their sha256)."""
    path = path.resolve()
    if not path.is_dir():
        raise SnapshotError(f"snapshot: {path} is not a snapshot folder")
    if path.name.startswith(".") or path.name.endswith(PARTIAL):
        raise SnapshotError(f"snapshot: {path} is incomplete: it was cut short while being made")
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise SnapshotError(f"snapshot: {path} has no {MANIFEST}: it is incomplete or not a snapshot") from None
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"snapshot: {path / MANIFEST} cannot be read: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise SnapshotError(f"snapshot: {path} has format {manifest.get('format')!r}; this Tessera reads format {FORMAT}")
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {DUMP, FILES}:
        raise SnapshotError(f"snapshot: the manifest of {path} does not list {DUMP} and {FILES}")
    for part, want in files.items():
        file = path / part
        if not file.is_file():
            raise SnapshotError(f"snapshot: {part} is missing from {path}")
        if file.stat().st_size != want.get("bytes"):
            raise SnapshotError(f"snapshot: {part} has {file.stat().st_size} bytes; the manifest says {want.get('bytes')}: "
                                "it was cut or changed")
        if file_sha256(file) != want.get("sha256"):
            raise SnapshotError(f"snapshot: {part} does not match its sha256 in the manifest: it is damaged")
    key = key_of(manifest, secret)
    if key is None and manifest.get("encryption"):
        return {**manifest, "contents_checked": False}
    try:
        feed([pg_bin("pg_restore"), "--list"], dict(os.environ), chunks(path / DUMP, key, DUMP), "reading the database dump")
        with files_of(path, key) as tar:
            for _ in tar:
                pass
    except (tarfile.TarError, OSError, seal.SealError) as exc:
        raise SnapshotError(f"snapshot: {FILES} cannot be read: {exc}") from None
    known = max((v for v, _, _ in migration_files(MIGRATIONS_DIR)), default=0)
    if int(manifest.get("schema_version", 0)) > known:
        raise SnapshotError(f"snapshot: it was made by a newer Tessera (schema {manifest['schema_version']}, this one knows "
                            f"{known}); restore it with that version or later")
    return {**manifest, "contents_checked": True}


def encrypted(path: Path) -> bool:
    """Whether the snapshot's manifest says it is encrypted (False for a folder without a readable manifest)."""
    try:
        return bool(json.loads((path / MANIFEST).read_text()).get("encryption"))
    except (OSError, ValueError, AttributeError):
        return False


def key_of(manifest: dict[str, Any], secret: bytes | None) -> bytes | None:
    """The key of an encrypted snapshot from ``secret`` (checked against the manifest), or None."""
    params = manifest.get("encryption")
    if not params or secret is None:
        return None
    try:
        key = seal.derive(secret, params)
        seal.check_key(key, str(params.get("check", "")))
    except seal.SealError as exc:
        raise SnapshotError(str(exc)) from None
    return key


def chunks(file: Path, key: bytes | None, name: str) -> Iterator[bytes]:
    if key is not None:
        yield from seal.opened(file, key, name)
        return
    with file.open("rb") as f:
        while chunk := f.read(1 << 20):
            yield chunk


def files_of(path: Path, key: bytes | None) -> tarfile.TarFile:
    if key is None:
        return tarfile.open(path / FILES, "r:gz")
    return tarfile.open(fileobj=seal.SealedReader(path / FILES, key, FILES), mode="r|gz")


def feed(args: list[str], env: dict[str, str], parts: Iterator[bytes], what: str) -> None:
    """Run a program with ``chunks`` on its standard input (a decrypted dump never touches the disk)."""
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=output, stderr=output, env=env, cwd="/")
        assert proc.stdin is not None
        try:
            for part in parts:
                proc.stdin.write(part)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it stopped reading: its exit status and output say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.wait(timeout=3600) != 0:
            output.seek(0)
            raise SnapshotError(f"snapshot: {what} failed: {output.read().decode(errors='replace').strip()[-600:]}")
