"""A thin blocking wrapper of :class:`Client` for scripts: the same methods, without ``await``.

    with SyncClient() as tessera:
        for hit in tessera.search("kettle").hits: ...
        answer = tessera.ask("How do I descale a kettle?")
        for event in tessera.chat("and the filter?"): ...

It runs its own event loop (so it cannot be used from inside a running one);
streams come back as ordinary iterators.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from shared.client.core import Client
from shared.client.events import ChatEvent, TensorEvent
from shared.runtime.config import Settings


class SyncClient:
    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        self._runner = asyncio.Runner()
        self._client = self._runner.run(self._make(settings, options))

    @staticmethod
    async def _make(settings: Settings | None, options: dict[str, Any]) -> Client:
        return Client(settings, **options)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._runner.run(self._client.close())
        finally:
            self._runner.close()

    def _iterate(self, stream: Any) -> Iterator[Any]:
        events = stream.__aiter__()
        try:
            while True:
                try:
                    yield self._runner.run(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            stream.cancel()

    def chat(self, question: Any, **options: Any) -> Iterator[ChatEvent]:
        return self._iterate(self._runner.run(self._client.chat(question, **options)))

    def resample(self, spec: Any, array: Any = None, **options: Any) -> Iterator[TensorEvent]:
        return self._iterate(self._runner.run(self._client.resample(spec, array, **options)))

    def watch_job(self, job_id: str, **options: Any) -> Iterator[Any]:
        return self._iterate(_Cancellable(self._client.watch_job(job_id, **options)))

    def __getattr__(self, name: str) -> Any:
        """Every other method of Client, run to completion."""
        method = getattr(self._client, name)
        if not asyncio.iscoroutinefunction(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        return call


class _Cancellable:
    """An async generator with the ``cancel()`` that streams have."""

    def __init__(self, gen: Any) -> None:
        self.gen = gen

    def __aiter__(self) -> Any:
        return self.gen

    def cancel(self) -> None:
        pass
