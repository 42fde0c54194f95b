"""Query vectors for the vector signal: from the recent ones kept in memory, from the embedding model running
in this process (ONNX, shared/runtime/query_encoder.py), or from the embed service when there is no export.

The in-process encoder is what lets a search answer while embed restarts. At start it loads the export of the
model the embed service runs; where there is none yet, a child process makes it (torch never enters this
process) and queries go to the embed service until it is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from shared.runtime import query_encoder
from shared.runtime.config import Settings

log = logging.getLogger("tessera.search")


class QueryVectors:
    """``get(query)``: the query's vector, from the LRU, the local encoder or ``remote`` (the embed service)."""

    def __init__(self, settings: Settings, remote: Callable[[str], Awaitable[np.ndarray]]) -> None:
        self.settings, self.remote = settings, remote
        self.size = settings.search.query_vector_cache
        self.recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self.local: query_encoder.OnnxEncoder | None = None
        self._task: asyncio.Task[None] | None = None

    def model_dir(self) -> Path:
        e = self.settings.embed
        return Path(e.model_path) if e.model_path else query_encoder.default_model_dir()

    def cache_dir(self) -> Path:
        return query_encoder.cache_dir(self.settings.search.encoder_cache)

    def start(self) -> None:
        if self.settings.search.query_encoder != "embed":
            self._task = asyncio.create_task(self._load())

    async def wait_loaded(self) -> bool:
        """Wait until ``start``'s load has ended; whether the encoder is in this process (a baseline or a test that
        compares rankings needs it there, not the embed service's vectors)."""
        if self._task is not None:
            await asyncio.shield(self._task)
        return self.local is not None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _load(self) -> None:
        model = self.model_dir()
        try:
            why = query_encoder.exportable(model)
            if why:
                raise ValueError(why)
            where = await asyncio.to_thread(query_encoder.export_dir, self.cache_dir(), model)
            if not query_encoder.is_exported(where):
                log.info("exporting the query encoder", extra={"model": str(model), "to": str(where)})
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "shared.runtime.query_encoder", "--model", str(model), "--cache", str(self.cache_dir()),
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
                _, err = await proc.communicate()
                if proc.returncode != 0:
                    raise ValueError(err.decode(errors="replace").strip()[-500:])
            self.local = await asyncio.to_thread(query_encoder.OnnxEncoder, where, self.settings.search.query_encoder)
            log.info("query encoder in process", extra={"variant": self.local.variant, "export": str(where)})
        except (OSError, ValueError, RuntimeError) as exc:  # onnxruntime raises RuntimeError subclasses
            log.warning("no query encoder in process: queries are embedded by the embed service", extra={"why": str(exc)[:500]})

    async def get(self, query: str) -> np.ndarray:
        vec = self.recent.get(query)
        if vec is not None:
            self.recent.move_to_end(query)
            return vec
        if self.local is not None:
            vec = await asyncio.to_thread(self.local.encode, [query])
            vec = vec[0]
        else:
            vec = await self.remote(query)
        if self.size:
            self.recent[query] = vec
            if len(self.recent) > self.size:
                self.recent.popitem(last=False)
        return vec
