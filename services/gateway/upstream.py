"""The gateway's side of the mesh: the client SDK for every call, the note files it writes, and model names it caches."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from services.gateway.notes import edited_markdown, note_markdown, note_name
from services.gateway.schemas import NoteEdit, NoteIn
from shared.client import Client, StatusError, Transport
from shared.contracts import REVIEW_TYPE
from shared.errors import FailedPrecondition, status_error
from shared.gen.tessera.v1 import chat_pb2, embed_pb2, ingest_pb2
from shared.runtime.config import Settings
from shared.runtime.files import atomic_write

#: Model names change only when a service restarts with another model.
MODEL_INFO_TTL_S = 30.0


def transport_of(settings: Settings) -> Transport:
    """How the gateway reads answers from chat (TESSERA_GATEWAY_CHAT_TRANSPORT)."""
    return "grpc" if settings.gateway.chat_transport == "grpc" else "quic"


class Mesh:
    """The SDK client the routes call (``mesh.client``), plus what the gateway adds: note files and cached model info."""

    def __init__(self, settings: Settings, client: Client) -> None:
        self.settings = settings
        self.client = client
        self.transport: Transport = transport_of(settings)
        self.notes_dir = Path(settings.gateway.notes_dir).expanduser().resolve() if settings.gateway.notes_dir else settings.path("notes")
        self._write_lock = asyncio.Lock()
        self._models: dict[str, tuple[float, object]] = {}

    async def close(self) -> None:
        await self.client.close()

    async def _model_info(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Model names and limits, looked up at most every MODEL_INFO_TTL_S rather than on every request."""
        cached = self._models.get(key)
        if cached is None or time.monotonic() - cached[0] > MODEL_INFO_TTL_S:
            cached = (time.monotonic(), await fetch())
            self._models[key] = cached
        return cached[1]

    async def chat_model(self) -> chat_pb2.ChatModelInfo:
        info: chat_pb2.ChatModelInfo = await self._model_info("chat", self.client.chat_model)
        return info

    async def embed_model(self) -> embed_pb2.ModelInfo:
        info: embed_pb2.ModelInfo = await self._model_info("embed", self.client.embed_model)
        return info

    async def write_note(self, note: NoteIn, name: str = "") -> tuple[Path, str]:
        """Write the note as a markdown file (the source of truth) under notes/<project or inbox>/ (as ``name`` when given:
        the same name again replaces that file)."""
        now = dt.datetime.now(dt.UTC)
        folder = self.notes_dir / (note.project or "inbox")
        text = note_markdown(note, now)
        async with self._write_lock:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / (name or note_name(note, now, set(os.listdir(folder))))
            atomic_write(path, text)
        return path, text

    async def capture(self, note: NoteIn, name: str = "") -> tuple[Path, ingest_pb2.IngestDocumentResponse]:
        """Write the note, then upload it to ingest; a failed upload keeps the file and says so.

        Unless ``note.force``, ingest refuses a repeat of a note of the same project (checked and stored as one
        step, so concurrent twins make one note): the file just written goes, and the reply carries the existing note."""
        path, text = await self.write_note(note, name)
        try:
            reply = await self.client.upload(str(path), text.encode(), project=note.project, media_type="text/markdown",
                                             dedup=not note.force and note.type != REVIEW_TYPE)
        except StatusError as exc:
            # The file stays: it is the source of truth, and the next ingest of the folder indexes it.
            raise status_error(exc.code, f"the note was saved to {path} but not indexed: {exc.message}") from None
        if reply.duplicate:
            path.unlink(missing_ok=True)
            return Path(reply.existing.path), reply
        return path, reply

    async def edit_note(self, document_id: str, edit: NoteEdit) -> tuple[Path, ingest_pb2.IngestDocumentResponse]:
        """Change a note Tessera wrote (a capture, under the notes folder): its file is rewritten with the new title, body,
        tags or type, then indexed again under the same id. ``edit.content_hash``, when given, must be the sha256 of the
        file as the editor last saw it, so two people editing at once cannot overwrite each other without knowing."""
        doc = await self.client.document(document_id)
        path = Path(doc.path)
        if not path.resolve().is_relative_to(self.notes_dir):
            raise FailedPrecondition(f"gateway: {doc.path} was imported from your files; Tessera edits only the notes it wrote "
                                     "(captures). Edit that file where it is: the watcher or `tessera ingest` picks the change up")
        async with self._write_lock:
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise FailedPrecondition(f"gateway: the note's file {doc.path} cannot be read: {exc.strerror}") from None
            if edit.content_hash and edit.content_hash != hashlib.sha256(data).hexdigest():
                raise FailedPrecondition(f"gateway: {doc.path} changed since it was opened (its content hash is no longer "
                                         f"{edit.content_hash[:12]}…); open it again and redo the edit")
            try:
                text = edited_markdown(data.decode(), dt.datetime.now(dt.UTC), title=edit.title, body=edit.body, tags=edit.tags,
                                       type=edit.type)
            except UnicodeDecodeError:
                raise FailedPrecondition(f"gateway: {doc.path} is not UTF-8 text; it cannot be edited here") from None
            except yaml.YAMLError as exc:
                raise FailedPrecondition(f"gateway: the frontmatter of {doc.path} is not valid YAML ({str(exc)[:200]}); "
                                         "fix it in the file") from None
            atomic_write(path, text)
        try:
            reply = await self.client.upload(str(path), text.encode(), project=doc.project, media_type="text/markdown", dedup=False)
        except StatusError as exc:
            raise status_error(exc.code, f"the edit was saved to {path} but not indexed: {exc.message}") from None
        return path, reply
