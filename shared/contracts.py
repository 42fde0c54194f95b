"""What services and their clients agree on beyond the protos: fixed replies, the names they are recognised by,
NATS subjects, streams and event payloads, and the index generation."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, TypedDict

from nats.js.api import RetentionPolicy, StreamConfig

from shared.errors import InvalidArgument
from shared.gen.tessera.v1 import common_pb2

#: The answer chat gives when no retrieved source passes the relevance floor (nothing is generated); the closest
#: hits follow it on later lines. Clients, the answer eval and the web page recognise an abstention by this prefix.
NOT_IN_NOTES = "Not in your notes: none of the notes I found answers this question."

#: ChatDone.finish_reason values beyond "stop", "length" and "cancelled".
FINISH_LOOP = "loop"  # the repetition guard stopped an answer that had started to repeat itself
FINISH_ABSTAINED = "abstained"  # the fixed NOT_IN_NOTES reply
FINISH_FAILED = "failed"  # stored turns only: the chat process died while generating
FINISH_GENERATING = "generating"  # stored turns only: the answer is being generated


# --- NATS: subjects, streams and event payloads -------------------------------------------------------------------

#: JetStream work queue of documents waiting for embeddings: ingest publishes, embed consumes (one ack per batch).
EMBED_STREAM = StreamConfig(name="TESSERA_EMBED", subjects=["tessera.embed.>"], retention=RetentionPolicy.WORK_QUEUE)
EMBED_SUBJECT = "tessera.embed.document"
#: Core NATS event after every change to the index (search drops its cached answers on it).
INDEX_SUBJECT = "tessera.index.updated"
#: The scheduler's announcements of a device's memory budget.
CAPACITY_SUBJECT = "tessera.gpu.capacity"


class EmbedRequest(TypedDict, total=False):
    """The payload on EMBED_SUBJECT: a document whose chunks need vectors (job_id when an ingest job is waiting)."""

    document_id: str
    job_id: str


def embed_request(document_id: uuid.UUID | str, job_id: uuid.UUID | str | None = None) -> bytes:
    payload: EmbedRequest = {"document_id": str(document_id)}
    if job_id is not None:
        payload["job_id"] = str(job_id)
    return json.dumps(payload).encode()


def parse_embed_request(data: bytes) -> uuid.UUID:
    """The document id of an EMBED_SUBJECT message."""
    return uuid.UUID(json.loads(data)["document_id"])


class IndexUpdated(TypedDict, total=False):
    """The payload on INDEX_SUBJECT: the new generation, and what changed."""

    generation: int
    document_id: str
    deleted: int
    embedded: int


# --- The index generation ------------------------------------------------------------------------------------------

async def bump_generation(conn: Any) -> int:
    """Advance the index generation (table index_state) inside the caller's transaction; search keys its cache on it."""
    row = await (await conn.execute("UPDATE index_state SET generation = generation + 1 RETURNING generation")).fetchone()
    return int(row[0])


# -- knowledge upkeep ------------------------------------------------------------------------------------------
#: Enrichment work: embed publishes a document here once all its chunks have vectors; chat's enrichers consume it.
ENRICH_STREAM = StreamConfig(name="TESSERA_ENRICH", subjects=["tessera.enrich.>"], retention=RetentionPolicy.WORK_QUEUE)
ENRICH_SUBJECT = "tessera.enrich.document"
#: The scheduler's request for the weekly review; one gateway instance (a queue group) writes it.
REVIEW_SUBJECT = "tessera.review.run"
REVIEW_QUEUE = "review-writers"
#: NATS KV bucket of leaders (e.g. the ingest instance that watches TESSERA_WATCH_ROOTS).
LEADERS_BUCKET = "tessera_leaders"

#: The five types enrichment assigns.
KINDS = ("insight", "snippet", "decision", "bug", "reference")
#: The wider frontmatter types ingest accepts, mapped onto the five ("note", the default, is left to the model).
KIND_OF_TYPE = {"insight": "insight", "idea": "insight", "journal": "insight", "snippet": "snippet", "howto": "snippet",
                "decision": "decision", "meeting": "decision", "task": "decision", "bug": "bug", "log": "bug",
                "reference": "reference", "doc": "reference", "article": "reference", "paper": "reference"}
#: The weekly digest's type: never enriched, never a duplicate of anything.
REVIEW_TYPE = "review"


def enrich_enabled(setting: str, project: str) -> bool:
    """TESSERA_ENRICH: on (every project), off, or the comma-separated projects to enrich."""
    value = setting.strip().lower()
    if value in ("on", "true", "1", "yes", "all"):
        return True
    if value in ("off", "false", "0", "no", ""):
        return False
    return project in {p.strip() for p in setting.split(",") if p.strip()}


def enrichment_proto(row: Mapping[str, Any]) -> common_pb2.Enrichment:
    """A document row's enrichment columns (kind, summary, auto_tags, entities, enrich_state, enrich_reason) as the proto."""
    return common_pb2.Enrichment(
        kind=row.get("kind") or "", summary=row.get("summary") or "", tags=row.get("auto_tags") or [],
        entities=[common_pb2.Entity(name=str(e.get("name", "")), kind=str(e.get("kind", ""))) for e in row.get("entities") or []],
        state=row.get("enrich_state") or "", reason=row.get("enrich_reason") or "")


_WINDOW = re.compile(r"^(\d{1,5}(?:\.\d+)?)([dhw]?)$")


def window_days(value: str) -> float:
    """A time window as days: '7d', '36h', '2w' or '7'."""
    m = _WINDOW.match(value.strip())
    if not m:
        raise InvalidArgument(f"{value!r} is not a window like 7d, 36h or 2w")
    return float(m.group(1)) * {"": 1.0, "d": 1.0, "h": 1 / 24, "w": 7.0}[m.group(2)]

