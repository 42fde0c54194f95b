"""What services and their clients agree on beyond the protos: fixed replies, the names they are recognised by,
NATS subjects, streams and event payloads, and the index generation."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import TypedDict

from nats.js.api import RetentionPolicy, StreamConfig

from shared.errors import InvalidArgument

#: The answer chat gives when no retrieved source passes the relevance floor (nothing is generated); the closest
#: hits follow it on later lines. Clients, the answer eval and the web page recognise an abstention by this prefix.
NOT_IN_NOTES = "Not in your notes: none of the notes I found answers this question."

#: ChatDone.finish_reason values beyond "stop", "length" and "cancelled".
FINISH_LOOP = "loop"  # the repetition guard stopped an answer that had started to repeat itself
FINISH_ABSTAINED = "abstained"  # the fixed NOT_IN_NOTES reply
FINISH_FAILED = "failed"  # stored turns only: the chat process died while generating
FINISH_GENERATING = "generating"  # stored turns only: the answer is being generated

#: Who a conversation is for: a person (listed by default), or a tool's evaluation or benchmark run.
PURPOSE_USER, PURPOSE_EVAL, PURPOSE_BENCH = "user", "eval", "bench"
PURPOSES = (PURPOSE_USER, PURPOSE_EVAL, PURPOSE_BENCH)


# --- NATS: subjects, streams and event payloads -------------------------------------------------------------------

#: JetStream work queue of documents waiting for embeddings: ingest publishes, embed consumes (one ack per batch).
EMBED_STREAM = StreamConfig(name="TESSERA_EMBED", subjects=["tessera.embed.>"], retention=RetentionPolicy.WORK_QUEUE)
EMBED_SUBJECT = "tessera.embed.document"
#: Core NATS event after every change to the index; ingest alone publishes it (it owns the generation), every search
#: instance hears it and keys its cached answers on the new generation.
INDEX_SUBJECT = "tessera.index.updated"
#: Core NATS event: embed wrote vectors; the ingest instances (one of the queue group) mark the documents embedded,
#: advance the generation and queue enrichment.
VECTORS_SUBJECT = "tessera.vectors.written"
VECTORS_QUEUE = "ingest-vectors"
#: Core NATS event: chat could not answer a question from the notes; one search instance logs the knowledge gap.
QUESTION_SUBJECT = "tessera.questions.unanswered"
QUESTION_QUEUE = "search-query-log"

#: Core NATS event: people are using the mesh (chat generating an answer, search answering queries); every process
#: with background work (embed's workers, chat's enrichers) hears it and yields (shared/runtime/foreground.py).
ACTIVITY_SUBJECT = "tessera.activity"
#: Core NATS: a document was deleted (payload: {"document_id"}); chat erases it from the citations of stored answers.
DOCUMENT_DELETED_SUBJECT = "tessera.documents.deleted"

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


@dataclass(frozen=True)
class IndexUpdated:
    """The payload on INDEX_SUBJECT: the new generation, and what changed (for logs)."""

    generation: int
    what: str = ""

    def as_bytes(self) -> bytes:
        return json.dumps({"generation": self.generation, "what": self.what}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> IndexUpdated:
        body = json.loads(data)
        return cls(int(body["generation"]), str(body.get("what", "")))


@dataclass(frozen=True)
class VectorsWritten:
    """The payload on VECTORS_SUBJECT: how many vectors were written, and the documents now wholly embedded."""

    written: int
    done: tuple[uuid.UUID, ...] = ()

    def as_bytes(self) -> bytes:
        return json.dumps({"written": self.written, "done": [str(d) for d in self.done]}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> VectorsWritten:
        body = json.loads(data)
        return cls(int(body["written"]), tuple(uuid.UUID(d) for d in body.get("done", [])))


@dataclass(frozen=True)
class UnansweredQuestion:
    """The payload on QUESTION_SUBJECT: a question chat answered with NOT_IN_NOTES, and its best source's relevance."""

    question: str
    project: str
    best: float

    def as_bytes(self) -> bytes:
        return json.dumps({"question": self.question[:500], "project": self.project, "best": self.best}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> UnansweredQuestion:
        body = json.loads(data)
        return cls(str(body["question"])[:500], str(body.get("project", "")), float(body.get("best", 0.0)))


# -- knowledge upkeep ------------------------------------------------------------------------------------------
#: Enrichment work: ingest publishes a document here once embed has written all its vectors; chat's enrichers consume it.
ENRICH_STREAM = StreamConfig(name="TESSERA_ENRICH", subjects=["tessera.enrich.>"], retention=RetentionPolicy.WORK_QUEUE)
ENRICH_SUBJECT = "tessera.enrich.document"
#: The weekly review, asked for by the gateways' timers (and by hand); one gateway instance (a queue group) writes it.
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


_WINDOW = re.compile(r"^(\d{1,5}(?:\.\d+)?)([dhw]?)$")


def window_days(value: str) -> float:
    """A time window as days: '7d', '36h', '2w' or '7'."""
    m = _WINDOW.match(value.strip())
    if not m:
        raise InvalidArgument(f"{value!r} is not a window like 7d, 36h or 2w")
    return float(m.group(1)) * {"": 1.0, "d": 1.0, "h": 1 / 24, "w": 7.0}[m.group(2)]

