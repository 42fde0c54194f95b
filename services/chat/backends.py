"""Generation through an OpenAI-compatible server (llama.cpp server, vLLM, Ollama): one slot of a remote backend.

Everything but the sampling stays in Tessera: retrieval, the prompt budget
(counted with the profile's tokenizer), citations, cancellation, the queue and
conversations. The server gets the prompt's messages on ``/chat/completions``
with ``stream: true`` and applies its own chat template; each streamed delta is
one piece of text for the answer filter. A cancelled answer closes the HTTP
stream, which a llama.cpp or vLLM server takes as the end of that request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from services.chat.model import Prefill, Sampling
from shared.errors import Unavailable


class BackendError(Unavailable):
    """The backend could not be reached or answered with an error; the message is one sentence for the user."""


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def first_model(url: str, key: str, timeout_s: float) -> str:
    """The first model id the server lists at /models."""
    try:
        r = httpx.get(url.rstrip("/") + "/models", headers=_headers(key), timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise BackendError(f"chat: the backend at {url} cannot be reached ({exc.__class__.__name__}: {exc})") from None
    if r.status_code != 200:
        raise BackendError(f"chat: the backend at {url} answered /models with HTTP {r.status_code}: {r.text[:200]}")
    data = r.json().get("data") or []
    if not data:
        raise BackendError(f"chat: the backend at {url} lists no model")
    return str(data[0]["id"])


@dataclass(eq=False)
class RemoteModel:
    """One slot: generates one answer at a time on the remote server."""

    url: str
    key: str
    model: str
    timeout_s: float
    repeat_penalty: float = 1.1

    def __post_init__(self) -> None:
        self.name = self.model
        self.last_prefill = Prefill()  # the server keeps its own cache: nothing is known of it here
        self._client = httpx.Client(base_url=self.url.rstrip("/"), headers=_headers(self.key),
                                    timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)))

    def describe(self) -> str:
        return f"{self.model} at {self.url} (OpenAI-compatible backend)"

    def cached_prefix(self, prompt: Sequence[int]) -> int:
        return 0

    def close(self) -> None:
        self._client.close()

    def body(self, messages: list[dict[str, str]], sampling: Sampling, stop: list[str]) -> dict[str, Any]:
        greedy = sampling.temperature <= 0
        body: dict[str, Any] = {
            "model": self.model, "messages": messages, "stream": True, "max_tokens": sampling.max_tokens,
            "temperature": 0.0 if greedy else sampling.temperature, "top_p": 1.0 if greedy else sampling.top_p,
            "seed": sampling.seed or 0xC0FFEE, "stream_options": {"include_usage": True},
            # llama.cpp's and Ollama's name for it; servers that do not know it ignore it, and the guard still stops loops.
            "repeat_penalty": self.repeat_penalty,
        }
        if greedy:
            body["top_k"] = 1
        if stop:
            body["stop"] = stop[:4]
        return body

    def generate(self, prompt: list[int], messages: list[dict[str, str]], sampling: Sampling, stop: list[str],
                 cancel: threading.Event, emit: Callable[[str], bool], schema: dict[str, Any] | None = None,
                 abortable: bool = False) -> tuple[str, int]:
        """Like ChatModel.generate: (finish reason, tokens generated); BackendError with a sentence on failure. With
        ``schema``, the server is asked for JSON of that shape (``response_format``, as llama.cpp's server takes it).
        ``abortable`` changes nothing here: the stream is left at the next chunk after ``cancel`` either way."""
        produced, usage, finish = 0, 0, "stop"
        body = self.body(messages, sampling, stop)
        if schema is not None:
            body["response_format"] = {"type": "json_object", "schema": schema}
        try:
            with self._client.stream("POST", "/chat/completions", json=body) as r:
                if r.status_code != 200:
                    r.read()
                    raise BackendError(f"chat: the backend answered HTTP {r.status_code}: {r.text[:300]}")
                for line in r.iter_lines():
                    if cancel.is_set():
                        return "cancelled", produced
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if chunk.get("error"):
                        err = chunk["error"]
                        raise BackendError(f"chat: the backend failed: {err.get('message', err) if isinstance(err, dict) else err}")
                    usage = int((chunk.get("usage") or {}).get("completion_tokens") or usage)
                    for choice in chunk.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if text:
                            produced += 1
                            if not emit(text):
                                return "cancelled", max(produced, usage)
                        if choice.get("finish_reason"):
                            finish = "length" if choice["finish_reason"] == "length" else "stop"
        except httpx.TimeoutException:
            raise BackendError(f"chat: the backend at {self.url} said nothing for {self.timeout_s:.0f} s") from None
        except httpx.HTTPError as exc:
            raise BackendError(f"chat: the backend at {self.url} failed ({exc.__class__.__name__}: {exc})") from None
        except ValueError as exc:
            raise BackendError(f"chat: the backend sent a chunk that is not JSON ({exc})") from None
        return finish, max(produced, usage)
