"""The model self-test chat runs before it reports SERVING, and the marker that tells `tessera status` how it went.

The test decodes a real prompt of at least :data:`MIN_PROMPT_TOKENS` tokens and
generates a few tokens: the work of a real question, so a runtime that crashes
in ``llama_decode`` (a llama.cpp built for another CPU) dies here, before it is
ever ready, instead of on a user's first question. The marker file is written
before the test ("running") and after it ("passed" or "failed"); a process that
died during the test leaves "running" behind with its pid, which `tessera
status` reports beside pm2's restart count.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from services.chat.model import Sampling
from shared.runtime.files import atomic_write

MIN_PROMPT_TOKENS = 64
GENERATED = 4
PASSAGE = ("Raft is a consensus algorithm for managing a replicated log. A server is in one of three states: leader, follower or "
           "candidate. Followers respond to requests from leaders and candidates. If a follower receives no communication for an "
           "election timeout, it becomes a candidate and starts an election; randomized election timeouts make split votes rare. "
           "The leader accepts log entries from clients and replicates them to the other servers.")


class SelfTestFailed(Exception):
    pass


class Generator(Protocol):
    def generate(self, prompt: list[int], messages: list[dict[str, str]], sampling: Sampling, stop: list[str],
                 cancel: threading.Event, emit: Any) -> tuple[str, int]: ...


class Tokenizer(Protocol):
    def render(self, messages: list[dict[str, str]]) -> str: ...

    def tokenize(self, text: str) -> list[int]: ...


def selftest(model: Generator, template: Tokenizer) -> str:
    """Decode a prompt of at least MIN_PROMPT_TOKENS tokens and generate GENERATED tokens; a line for the log, or SelfTestFailed."""
    messages = [{"role": "system", "content": "Answer in one short sentence."},
                {"role": "user", "content": f"{PASSAGE}\n\nQuestion: How does Raft make split votes rare?"}]
    prompt = template.tokenize(template.render(messages))
    if len(prompt) < MIN_PROMPT_TOKENS:
        raise SelfTestFailed(f"chat: the self-test prompt has {len(prompt)} tokens, fewer than {MIN_PROMPT_TOKENS}")
    pieces: list[str] = []

    def keep(text: str) -> bool:
        pieces.append(text)
        return True

    started = time.monotonic()
    _, produced = model.generate(prompt, messages, Sampling(max_tokens=GENERATED), [], threading.Event(), keep)
    took = time.monotonic() - started
    if produced < 1:
        raise SelfTestFailed("chat: the model self-test generated no token")
    return f"self-test passed: {len(prompt)} prompt tokens and {produced} generated in {took:.2f} s ({''.join(pieces).strip()!r})"


@dataclass
class Marker:
    """``<data_dir>/run/chat-<pm2 instance>.selftest.json``: the last self-test of that instance's process."""

    path: Path

    @classmethod
    def for_instance(cls, run_dir: Path, service: str = "chat") -> Marker:
        return cls(run_dir / f"{service}-{os.environ.get('NODE_APP_INSTANCE', '0') or '0'}.selftest.json")

    def write(self, state: str, detail: str = "") -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps({"state": state, "pid": os.getpid(), "at": time.time(), "detail": detail}))
