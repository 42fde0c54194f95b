"""Restoring a snapshot (shared/ops/snapshot.py makes and verifies them): the database replaced whole, any migration an
older snapshot lacks applied, document paths moved to this data directory's folders, the files put back, the search
cache emptied. The services must be stopped meanwhile (`tessera snapshot restore` does that with pm2).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from shared.errors import InfraError
from shared.ops.snapshot import (
    DUMP,
    PATH_COLUMNS,
    Folders,
    SnapshotError,
    chunks,
    database_facts,
    feed,
    files_of,
    key_of,
    pg_args,
    pg_bin,
    verify,
)
from shared.runtime import secrets
from shared.runtime.config import Settings


def restore(settings: Settings, path: Path, secret: bytes | None = None) -> dict[str, Any]:
    """Replace this data directory's knowledge base with the snapshot's (an encrypted one with ``secret``). The embedded
    infrastructure is started when it is not running; the services must not be (their connections are closed). Returns
    what was restored."""
    import psycopg
    from psycopg import sql

    from shared.ops import infra
    from shared.ops.postgres import Postgres

    manifest = verify(path, secret)
    if not manifest["contents_checked"]:
        raise SnapshotError(f"snapshot: {path} is encrypted: give its passphrase or key (--key-file, or TESSERA_SNAPSHOT_KEY_FILE)")
    key = key_of(manifest, secret)
    path = path.resolve()
    if "postgres" not in settings.infra.embedded:
        raise SnapshotError("snapshot: restore replaces the embedded PostgreSQL's database; with TESSERA_DATABASE_URL "
                            f"pointing elsewhere, restore {path / DUMP} with pg_restore yourself")
    servers = infra.start_all(settings)
    pg = next(s for s in servers if isinstance(s, Postgres))
    # the database is replaced whole: drop it (closing any connection left), let provisioning make it again with the
    # extension and the roles' rights, and read the dump into it as the owner
    with psycopg.connect(secrets.database_url(settings, "superuser").rsplit("/", 1)[0] + "/postgres", autocommit=True,
                         connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(pg.database)))
    pg.provision()
    args, env = pg_args(settings, "owner")
    feed([pg_bin("pg_restore"), *args, "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"], env,
          chunks(path / DUMP, key, DUMP), "pg_restore")
    pg.provision()  # the runtime role's rights on the tables just made
    applied = infra.migrate(settings)  # a snapshot of an older schema gets the migrations it lacks
    here = Folders.of(settings)
    moved = _move_paths(settings, manifest.get("folders", {}), here)
    _restore_files(path, key, here)
    _empty_cache(settings)
    after = database_facts(settings)
    if after["counts"] != manifest.get("counts"):
        raise SnapshotError(f"snapshot: restored counts {after['counts']} differ from the manifest's {manifest.get('counts')}")
    return {"name": manifest["name"], "migrations_applied": applied, "paths_moved": moved, **after}


def _move_paths(settings: Settings, before: dict[str, str], here: Folders) -> int:
    """Paths under the snapshot's folders, moved to this data directory's (another machine, another data_dir)."""
    import psycopg

    moved = 0
    with psycopg.connect(secrets.database_url(settings, "owner"), autocommit=True, connect_timeout=10) as conn:
        for name, new in here.items():
            old = before.get(name)
            if not old or old == str(new):
                continue
            for table, column in PATH_COLUMNS:
                cur = conn.execute(f"UPDATE {table} SET {column} = %(new)s || substr({column}, length(%(old)s) + 1) "
                                   f"WHERE {column} = %(old)s OR {column} LIKE %(prefix)s",
                                   {"new": str(new), "old": old, "prefix": old.replace("%", r"\%").replace("_", r"\_") + "/%"})
                moved += cur.rowcount
    return moved


def _restore_files(path: Path, key: bytes | None, here: Folders) -> None:
    """The snapshot's files into this data directory's folders (a file of the same name is replaced; others stay)."""
    targets = dict(here.items())
    here.imports.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=here.imports.parent) as staging, files_of(path, key) as tar:
        tar.extractall(staging, filter="data")
        for name, target in targets.items():
            source = Path(staging) / name
            if not source.is_dir():
                continue
            for item in sorted(source.rglob("*")):
                dest = target / item.relative_to(source)
                if item.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                else:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(item, dest)


def _empty_cache(settings: Settings) -> None:
    """Search results cached before the restore name documents the snapshot may not have."""
    import redis

    try:
        client = redis.Redis.from_url(secrets.redis_url(settings), socket_connect_timeout=5)
        try:
            client.flushdb()
        finally:
            client.close()
    except redis.RedisError as exc:
        raise InfraError(f"snapshot: the result cache could not be emptied ({exc}); restart Valkey before the services") from None
