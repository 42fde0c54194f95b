"""A ChatRequest checked and taken apart: the question, the turns before it, extra system text, sampling; no I/O."""

from __future__ import annotations

from services.chat.model import Sampling
from services.chat.prompt import Turn
from shared.contracts import PURPOSES
from shared.errors import InvalidArgument
from shared.gen.tessera.v1 import chat_pb2

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 200
MAX_MESSAGE_CHARS = 64_000
MAX_SOURCES = 20


def parse_request(request: chat_pb2.ChatRequest, max_tokens_cap: int) -> tuple[str, list[Turn], str, Sampling]:
    """(question, turns before it, extra system text, sampling), or InvalidArgument with a sentence."""
    if not request.messages:
        raise InvalidArgument("chat: messages is empty; send at least one user message")
    if len(request.messages) > MAX_MESSAGES:
        raise InvalidArgument(f"chat: {len(request.messages)} messages; at most {MAX_MESSAGES} are accepted")
    system, turns = [], []
    for i, m in enumerate(request.messages):
        if m.role not in ROLES:
            raise InvalidArgument(f"chat: messages[{i}].role is {m.role!r}; expected one of {', '.join(ROLES)}")
        if len(m.content) > MAX_MESSAGE_CHARS:
            raise InvalidArgument(f"chat: messages[{i}] has {len(m.content)} characters; at most {MAX_MESSAGE_CHARS} are accepted")
        if m.role == "system":
            system.append(m.content)
        else:
            turns.append(Turn(m.role, m.content))
    if not turns or turns[-1].role != "user" or not turns[-1].content.strip():
        raise InvalidArgument("chat: the last message must be a non-empty user message (the question)")
    if request.max_tokens > max_tokens_cap:
        raise InvalidArgument(f"chat: max_tokens is {request.max_tokens}; this server allows at most {max_tokens_cap}")
    if not 0 <= request.temperature <= 2:
        raise InvalidArgument(f"chat: temperature is {request.temperature}; expected 0 to 2")
    if not 0 <= request.top_p <= 1:
        raise InvalidArgument(f"chat: top_p is {request.top_p}; expected 0 to 1 (0: the default, 1)")
    if request.top_k_sources > MAX_SOURCES:
        raise InvalidArgument(f"chat: top_k_sources is {request.top_k_sources}; at most {MAX_SOURCES}")
    if request.purpose and request.purpose not in PURPOSES:
        raise InvalidArgument(f"chat: purpose is {request.purpose[:40]!r}; expected one of {', '.join(PURPOSES)}")
    if request.mode not in ("", "answer", "research"):
        raise InvalidArgument(f"chat: mode is {request.mode[:40]!r}; expected answer or research")
    if request.mode == "research" and not request.rag:
        raise InvalidArgument("chat: research mode searches the notes: it needs rag")
    if len(request.stop) > 4 or any(len(s) > 64 for s in request.stop):
        raise InvalidArgument("chat: stop takes at most 4 strings of at most 64 characters")
    sampling = Sampling(max_tokens=request.max_tokens or max_tokens_cap, temperature=request.temperature,
                        top_p=request.top_p or 1.0, seed=request.seed)
    return turns[-1].content.strip(), turns[:-1], "\n\n".join(system), sampling
