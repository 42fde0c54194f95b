"""Folders kept in sync with the index (TESSERA_WATCH_ROOTS).

One ingest instance watches: the leader, elected through a NATS KV key whose value expires unless the
leader renews it (a dead leader's key lapses within LEASE_S and another instance takes over). The leader
first reconciles each root against the index (files changed, added, renamed or deleted while nobody
watched), then follows the file system with ``watchfiles``, a debounced batch of changes at a time:

- a file created or changed is ingested (an unchanged content hash costs nothing);
- a file deleted is removed from the index;
- a file renamed (a path gone and a path new with the same content in one batch, or found so when
  reconciling) keeps its document: id, chunks, vectors and links stay; only its path changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats.errors
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError

from services.ingest.parse import SUPPORTED, content_hash
from services.ingest.paths import walk
from shared.contracts import LEADERS_BUCKET
from shared.errors import PermissionDenied

if TYPE_CHECKING:
    from services.ingest.ingestor import Ingestor

log = logging.getLogger("tessera.ingest.watch")
logging.getLogger("watchfiles").setLevel(logging.WARNING)  # it logs every batch at info
KEY = "watcher"
#: The leader's key lives this long unless renewed (every third of it).
LEASE_S = 6.0
#: Time the file watcher is given to set up before the folders are reconciled.
ARM_S = 0.3


def watched(path: str) -> bool:
    """A file the watcher handles: a supported kind, not hidden, not a temporary file an editor or writer leaves."""
    p = Path(path)
    return p.suffix.lower() in SUPPORTED and not p.name.startswith((".", "~")) and not p.name.endswith(("~", ".tmp", ".swp"))


async def watch_leader(rt: Any) -> str:
    """The instance id holding the watcher key, or '' (none, or NATS cannot say)."""
    try:
        kv = await rt.nats.jetstream().key_value(LEADERS_BUCKET)
        entry = await kv.get(KEY)
        return (entry.value or b"").decode()
    except (nats.errors.Error, TimeoutError, OSError):  # no bucket yet, no key, or NATS away
        return ""


class Watcher:
    def __init__(self, ing: Ingestor, roots: list[str], debounce_ms: int, stopping: asyncio.Event | None = None) -> None:
        self.ing, self.debounce_ms = ing, debounce_ms
        self.roots: list[Path] = []
        for root in roots:
            try:
                real = ing.roots.check(Path(root).expanduser())
            except (PermissionDenied, OSError, RuntimeError) as exc:  # a root outside TESSERA_INGEST_ROOTS is refused, said once
                log.error("watch: %s is not watched: %s", root, exc)
                continue
            real.mkdir(parents=True, exist_ok=True)
            self.roots.append(real)
        self.stopping = stopping or asyncio.Event()
        self.leading = asyncio.Event()

    def root_of(self, path: Path) -> Path:
        return next((r for r in self.roots if path == r or r in path.parents), self.roots[0])

    # -- leadership -------------------------------------------------------------------------------------------------
    async def _bucket(self) -> Any:
        js = self.ing.rt.nats.jetstream()
        try:
            return await js.key_value(LEADERS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            return await js.create_key_value(KeyValueConfig(bucket=LEADERS_BUCKET, ttl=LEASE_S, history=1))

    async def run(self) -> None:
        """Campaign for the watcher key; watch while holding it; campaign again when it is lost."""
        me = self.ing.rt.instance_id.encode()
        while not self.stopping.is_set():
            try:
                kv = await self._bucket()
                revision = await kv.create(KEY, me)
            except KeyWrongLastSequenceError:  # another instance leads
                await self._sleep(LEASE_S / 3)
                continue
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                log.warning("watch: election failed (%s); retrying", exc)
                await self._sleep(1.0)
                continue
            log.info("watch: this instance watches %s", ", ".join(map(str, self.roots)))
            self.leading.set()
            work = asyncio.create_task(self._lead())
            try:
                while not self.stopping.is_set() and not work.done():
                    await self._sleep(LEASE_S / 3)
                    try:
                        revision = await kv.update(KEY, me, last=revision)
                    except KeyWrongLastSequenceError:
                        log.warning("watch: lost the watcher key to another instance")
                        break
                    except (nats.errors.Error, TimeoutError) as exc:
                        log.warning("watch: could not renew the watcher key (%s)", exc)
            finally:
                self.leading.clear()
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
            if self.stopping.is_set():
                with contextlib.suppress(Exception):
                    await kv.delete(KEY, last=revision)  # the next instance need not wait for the key to lapse

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)

    async def _lead(self) -> None:
        """Arm the file watcher, then reconcile, then apply what it saw: a change made while the folders are being read
        is applied after (an unchanged file costs a hash), never missed."""
        import watchfiles

        batches: asyncio.Queue[set[tuple[Any, str]]] = asyncio.Queue()

        async def follow() -> None:
            async for changes in watchfiles.awatch(*self.roots, debounce=max(self.debounce_ms, 50), step=min(50, self.debounce_ms),
                                                   stop_event=self.stopping, recursive=True):
                await batches.put(changes)

        follower = asyncio.create_task(follow())
        try:
            await asyncio.sleep(ARM_S)
            for root in self.roots:
                await self.reconcile(root)
            while not follower.done():
                nxt = asyncio.create_task(batches.get())
                await asyncio.wait({nxt, follower}, return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    break
                try:
                    await self.apply(nxt.result())
                except Exception:  # boundary: one batch of file changes; logged, and the next start reconciles them
                    log.exception("watch: changes not applied; the next start reconciles them")
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await follower

    # -- changes --------------------------------------------------------------------------------------------------------
    async def reconcile(self, root: Path) -> None:
        """Bring the index in line with the folder: renames (same content, new path) first, then an ordinary folder ingest
        that stores what changed and removes what is gone."""
        files = await asyncio.to_thread(lambda: list(walk(root, self.ing.roots, [])))
        stored = await self.ing.store.under_root(str(root))
        on_disk = {str(p) for p, _ in files}
        gone = {path: v for path, v in stored.items() if path not in on_disk}
        if gone:
            fresh = [p for p, refusal in files if refusal is None and str(p) not in stored]
            await self._renames({p: doc for p, doc in gone.items()}, fresh, root)
        job = await self.ing.new_job(str(root), "", [str(p) for p, _ in files])
        await self.ing.run_folder(job, root, "", files, keep_missing=False)
        log.info("watch: reconciled %s (%d files)", root, len(files))

    async def _renames(self, gone: dict[str, tuple[Any, str]], fresh: list[Path], root: Path) -> set[str]:
        """Pair paths that went with new paths of the same content; each pair is a rename. The new paths handled."""
        by_hash = {h: (path, doc_id) for path, (doc_id, h) in gone.items()}
        done: set[str] = set()
        for new in fresh:
            try:
                digest = content_hash(await asyncio.to_thread(self.ing.roots.read_bytes, new))  # roots and secrets checked on what is opened
            except (OSError, PermissionDenied):
                continue
            if digest in by_hash:
                old, doc_id = by_hash.pop(digest)
                generation = await self.ing.store.rename(doc_id, str(new), str(self.root_of(new)))
                await self.ing.index_changed(generation, f"renamed {doc_id}")
                if generation:
                    log.info("watch: %s renamed to %s", old, new)
                done.add(str(new))
        return done

    def _files_in(self, folder: Path) -> list[tuple[Path, str | None]]:
        return list(walk(folder, self.ing.roots, []))

    async def apply(self, changes: set[tuple[Any, str]]) -> None:
        import watchfiles

        deleted = {p for c, p in changes if c == watchfiles.Change.deleted and watched(p)}
        touched = {p for c, p in changes if c != watchfiles.Change.deleted and watched(p) and Path(p).is_file()}
        # A folder that appears (made, or moved in) may hold files whose own events came before it was watched.
        for c, p in changes:
            if c != watchfiles.Change.deleted and Path(p).is_dir():
                files = await asyncio.to_thread(self._files_in, Path(p))
                touched |= {str(f) for f, refusal in files if refusal is None}
        for c, p in changes:  # a folder that went takes its files with it (their own events may not come)
            if c == watchfiles.Change.deleted and not Path(p).suffix and not Path(p).exists():
                deleted |= set(await self.ing.store.paths_under(p.rstrip("/") + "/"))
        deleted -= touched  # deleted and written again within the batch: a change
        gone: dict[str, tuple[Any, str]] = {}
        for path in deleted:
            row = await self.ing.store.document(path=path)
            if row is not None:
                gone[path] = (row["id"], row["content_hash"])
        renamed = await self._renames(gone, [Path(p) for p in sorted(touched)], self.roots[0]) if gone and touched else set()
        still_gone = [p for p in sorted(gone) if (await self.ing.store.document(path=p)) is not None]  # not renamed
        for path in still_gone:
            doc_id = gone[path][0]
            generation = await self.ing.store.delete_document(doc_id)
            await self.ing.index_changed(generation, f"deleted {doc_id}")
            if generation:
                log.info("watch: %s deleted", path)
        todo = sorted(touched - renamed)
        if not todo:
            return
        by_root: dict[Path, list[str]] = {}
        for path in todo:
            by_root.setdefault(self.root_of(Path(path)), []).append(path)
        for root, paths in by_root.items():
            job = await self.ing.new_job(str(root), "", paths)
            # run_folder opens each file through the roots (no symlink out, no secret, no hidden file), as for a folder ingest
            await self.ing.run_folder(job, root, "", [(Path(p), self.ing.roots.refusal(p)) for p in paths], keep_missing=True)
