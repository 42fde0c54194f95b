"""The typed events of a streamed answer and of a resample job, the same whatever the transport.

A chat stream yields :class:`Token`, :class:`Citation`, in research mode :class:`Step`, and, last, :class:`Done`;
a resample job yields :class:`Started`, :class:`TileReady` (in any order) and,
last, :class:`Finished`. An error frame is never yielded: it is raised as the
StatusError of its code (shared.errors). The dispatch on the protos' oneofs is
written here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import status_error
from shared.gen.tessera.v1 import chat_pb2, common_pb2, tensor_pb2


@dataclass(frozen=True)
class Token:
    """Answer text; ``citations`` are the source numbers written in it so far."""

    text: str
    index: int
    citations: tuple[int, ...] = ()


@dataclass(frozen=True)
class Citation:
    """A source the answer cites, sent before the text that cites it. ``origin``: "model" or "overlap"."""

    number: int
    source: common_pb2.SourceRef
    score: float
    origin: str = ""


@dataclass(frozen=True)
class Done:
    """The end of an answer: why it ended, its counts, and every source the prompt held (cited or not)."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    conversation_id: str
    message_id: str
    duration_ms: float
    retrieval_ms: float
    sources: tuple[Citation, ...]
    #: each sentence of the answer: supported by which source lines, unsupported, or not judged (chat_pb2.SentenceSupport)
    sentences: tuple[chat_pb2.SentenceSupport, ...] = ()
    cached_tokens: int = 0  # prompt tokens the model's KV cache held already
    prefill_ms: float = 0.0  # evaluating the rest of the prompt
    #: the answer as stored when it differs from the streamed tokens (its unsupported sentences left out); "" otherwise
    text: str = ""


@dataclass(frozen=True)
class Step:
    """A step of a research-mode answer: "plan" (the searches, one per line), "search" (its query and the sources it
    added), "covered" or "bound" (why it stopped searching)."""

    kind: str
    text: str
    new_sources: int = 0
    ms: float = 0.0


ChatEvent = Token | Citation | Done | Step


def _citation(c: chat_pb2.Citation) -> Citation:
    return Citation(number=c.number, source=c.source, score=c.score, origin=c.origin)


def chat_event(ev: chat_pb2.ChatEvent) -> ChatEvent:
    """The typed event of a ChatEvent frame; an error frame raises its StatusError."""
    kind = ev.WhichOneof("event")
    if kind == "token":
        return Token(ev.token.text, ev.token.index, tuple(ev.token.citations))
    if kind == "citation":
        return _citation(ev.citation)
    if kind == "done":
        d = ev.done
        return Done(d.finish_reason, d.prompt_tokens, d.completion_tokens, d.conversation_id, d.message_id, d.duration_ms,
                    d.retrieval_ms, tuple(_citation(c) for c in d.sources), tuple(d.sentences), d.cached_tokens, d.prefill_ms, d.text)
    if kind == "step":
        return Step(ev.step.kind, ev.step.text, ev.step.new_sources, ev.step.ms)
    if kind == "error":
        raise status_error(ev.error.code or "INTERNAL", ev.error.message)
    raise status_error("INTERNAL", "chat: an empty event arrived on the answer stream")


@dataclass(frozen=True)
class Started:
    """The job is admitted: the output's shape (T, Z, Y, X), dtype and tiling."""

    job_id: str
    output_shape: tuple[int, ...]
    dtype: int  # tensor_pb2.DType
    tiles: int
    tile_shape: tuple[int, ...]


@dataclass(frozen=True)
class TileReady:
    """One output tile: C-order bytes of ``shape`` at ``offset`` in the output."""

    index: int
    offset: tuple[int, ...]
    shape: tuple[int, ...]
    dtype: int  # tensor_pb2.DType
    data: bytes


@dataclass(frozen=True)
class Finished:
    """The job is done: every tile was sent. ``workers`` and ``backends`` say who computed them, and on what."""

    tiles: int
    bytes: int
    output_shape: tuple[int, ...]
    duration_ms: float
    workers: list[str]
    backends: list[str]
    peak_tiles_held: int
    worker_peak_tiles: int


TensorEvent = Started | TileReady | Finished


def tensor_event(frame: tensor_pb2.TensorFrame) -> TensorEvent:
    """The typed event of a TensorFrame; an error frame raises its StatusError."""
    kind = frame.WhichOneof("frame")
    if kind == "tile":
        t = frame.tile
        return TileReady(t.index, tuple(t.offset), tuple(t.shape), t.dtype, t.data)
    if kind == "start":
        s = frame.start
        return Started(s.job_id, tuple(s.output_shape), s.dtype, s.tiles, tuple(s.tile_shape))
    if kind == "end":
        e = frame.end
        return Finished(e.tiles, e.bytes, tuple(e.output_shape), e.duration_ms, list(e.workers), list(e.backends),
                        e.peak_tiles_held, e.worker_peak_tiles)
    if kind == "error":
        raise status_error(frame.error.code or "INTERNAL", frame.error.message)
    raise status_error("INTERNAL", "tensor: an empty frame arrived on the tile stream")
