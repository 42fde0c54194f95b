"""The chat model: a GGUF file loaded with llama-cpp-python from a local path.

:class:`ChatTemplate` renders and counts prompts with the model's own chat
template and tokenizer (a vocabulary-only load, safe to use while slots
generate); :class:`ChatModel` is one slot: a loaded model that generates one
answer at a time, token by token, and stops within one token of being told to.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import secrets as _random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.chat import omp
from shared.runtime.cpu import SlotThreads, mesh_cores

#: Prompt tokens evaluated between two looks at the cancel flag.
PREFILL_STEP = 64
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def layer_count(path: Path) -> int:
    """Transformer blocks in a GGUF model, read from its metadata (vocabulary-only load)."""
    from llama_cpp import Llama

    meta = Llama(model_path=str(path), vocab_only=True, verbose=False).metadata
    arch = meta.get("general.architecture", "llama")
    return int(meta.get(f"{arch}.block_count", 0)) or 1


def offload_plan(path: Path, layers: int, wanted: int, context: int) -> tuple[int, int]:
    """(layers to offload, bytes to ask for): weights per layer from the file size, plus the KV cache.

    The KV-cache term is a generous bound (fp16 K and V, 2 kB per layer per token).
    """
    wanted = layers if wanted < 0 else min(wanted, layers)
    per_layer = path.stat().st_size // layers
    return wanted, wanted * (per_layer + context * 2048)


def layers_granted(granted_bytes: int, path: Path, layers: int, wanted: int, context: int) -> int:
    """How many layers fit in the bytes the scheduler granted."""
    wanted, _ = offload_plan(path, layers, wanted, context)
    per_layer = path.stat().st_size // layers + context * 2048
    return min(wanted, granted_bytes // per_layer) if per_layer else 0


class StepAborted(Exception):
    """A llama.cpp step stopped part-way because its cancel flag was set (ChatModel._aborted_by)."""


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0


def template_parts(render: Callable[[list[dict[str, str]]], str], messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The rendered prompt as (text, is the template's own) parts. Each content is replaced by a random marker,
    the template rendered, and the markers swapped back for the contents; a template that changes a marker (it
    transforms content) makes every part text: a prompt without control tokens, never one with a note's."""
    nonce = _random.token_hex(8)
    markers = [f"TESSERA{nonce}M{i}X" for i in range(len(messages))]
    rendered = render([{**m, "content": marker} for m, marker in zip(messages, markers, strict=True)])
    parts: list[tuple[str, bool]] = []
    pos = 0
    for marker, message in zip(markers, messages, strict=True):
        at = rendered.find(marker, pos)
        if at < 0 or rendered.count(marker) != 1:
            return [(render(messages), False)]
        parts += [(rendered[pos:at], True), (message["content"], False)]
        pos = at + len(marker)
    parts.append((rendered[pos:], True))
    return [(text, special) for text, special in parts if text]


class ChatTemplate:
    """The model's chat template and tokenizer, without its weights."""

    def __init__(self, path: Path) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._vocab: Any = Llama(model_path=str(path), vocab_only=True, verbose=False)
        self._lock = threading.Lock()
        meta = self._vocab.metadata
        eos = self._vocab.detokenize([self._vocab.token_eos()], special=True).decode("utf-8", "replace")
        bos = self._vocab.detokenize([self._vocab.token_bos()], special=True).decode("utf-8", "replace")
        self._formatter = Jinja2ChatFormatter(meta.get("tokenizer.chat_template") or CHATML, eos_token=eos, bos_token=bos)

    def render(self, messages: list[dict[str, str]]) -> str:
        chat_messages: Any = messages  # role/content dicts: what llama_cpp's message TypedDicts are
        return str(self._formatter(messages=chat_messages).prompt)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Tokens of ``text``; ``special=False`` reads control-token look-alikes (``<|im_start|>``) as plain text."""
        with self._lock:
            return list(self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=special))

    def count(self, text: str) -> int:
        """An upper bound of the tokens ``tokenize_messages`` gives for a rendered prompt: with control tokens read as
        text, each costs several tokens instead of one."""
        return len(self.tokenize(text, special=False))

    def tokenize_messages(self, messages: list[dict[str, str]]) -> list[int]:
        """The rendered prompt's tokens, where only the template's own text may become control tokens: each message's
        content (notes, questions, history) is tokenized as text, so a note holding ``<|im_end|><|im_start|>system``
        stays words and never opens a turn of its own."""
        return [t for text, special in template_parts(self.render, messages) for t in self.tokenize(text, special=special)]


@dataclass
class Prefill:
    """What the last prompt cost: tokens read from the KV cache, tokens evaluated, and the time that took."""

    cached: int = 0
    evaluated: int = 0
    ms: float = 0.0


@dataclass(eq=False)
class ChatModel:
    """A loaded llama.cpp model (each instance its own context: two are never equal)."""

    path: Path
    n_ctx: int
    n_threads: int = 0
    n_gpu_layers: int = 0
    repeat_penalty: float = 1.1
    #: The cores shared out among the slots generating now (shared/runtime/cpu.py); None: n_threads throughout.
    threads: SlotThreads | None = None

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"chat: TESSERA_CHAT_MODEL_PATH={self.path} is not a file")
        from llama_cpp import Llama

        # Prompt and answer tokens on the same threads (llama-cpp-python's default for the prompt is every CPU of the
        # machine, even those this process may not run on).
        self._n = self.n_threads or mesh_cores()
        self.llm: Any = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self._n, n_threads_batch=self._n,
                              n_gpu_layers=self.n_gpu_layers, verbose=False)
        omp.release()  # whatever loading ran on this thread's OpenMP workers
        self.name = self.path.stem
        self.last_prefill = Prefill()
        self._pair = (self._n, self._n)  # (threads per answer token, threads per prompt step) llama.cpp runs now
        self._background = False  # the call running is background work (generate(abortable=True))

    def describe(self) -> str:
        return f"{self.name} (ctx {self.n_ctx}, {self.n_gpu_layers} GPU layers)"

    @property
    def running_threads(self) -> int:
        """The threads llama.cpp runs this slot's next step on."""
        import llama_cpp

        return int(llama_cpp.llama_n_threads(self.llm._ctx.ctx))

    def _fit_threads(self) -> None:
        """Run the next step on this slot's share of the cores, which changes as other slots start and end: prompt steps
        on the whole share, answer tokens on what :meth:`SlotThreads.decode_share` leaves of it (llama.cpp takes the
        first count for one-token batches, the second for longer ones)."""
        if self.threads is None:
            return
        n = self.threads.share(self._background)
        pair = (self.threads.decode_share(n), n)
        if pair != self._pair:
            import llama_cpp

            llama_cpp.llama_set_n_threads(self.llm._ctx.ctx, *pair)
            self._pair = pair

    def _busy(self) -> contextlib.AbstractContextManager[None]:
        """Counted among the slots generating while inside (their threads share the cores)."""
        return self.threads.running(self._background) if self.threads is not None else contextlib.nullcontext()

    def cached_prefix(self, prompt: Sequence[int]) -> int:
        """How many of ``prompt``'s first tokens this slot's KV cache holds already (its last prompt and answer)."""
        llm = self.llm
        common = 0
        for a, b in zip(llm.input_ids[: llm.n_tokens], prompt, strict=False):
            if a != b:
                break
            common += 1
        return common

    def _prefill(self, prompt: Sequence[int], cancel: threading.Event) -> bool:
        """Evaluate ``prompt`` past what the KV cache holds (its last token always, for its logits); False if cancelled."""
        llm = self.llm
        common = max(0, min(self.cached_prefix(prompt), len(prompt) - 1))
        self.last_prefill = Prefill(cached=common, evaluated=len(prompt) - common)
        started = time.perf_counter()
        llm.n_tokens = common  # eval() drops the KV cache beyond this point
        for i in range(common, len(prompt), PREFILL_STEP):
            if cancel.is_set():
                return False
            self._fit_threads()
            llm.eval(prompt[i:i + PREFILL_STEP])
        self.last_prefill.ms = (time.perf_counter() - started) * 1000
        return True

    def judge(self, prompt: list[int], yes: Sequence[int], no: Sequence[int], cancel: threading.Event) -> float | None:
        """The probability the model gives "yes" rather than "no" as its next token after ``prompt`` (its choice held
        to those two answers); None if cancelled. The KV cache keeps the prompt: an answer whose prompt shares its
        beginning evaluates only the rest."""
        import numpy as np

        if len(prompt) >= self.n_ctx:
            raise ValueError(f"chat: the {len(prompt)}-token check does not fit the {self.n_ctx}-token context")
        try:
            with self._busy():
                if not self._prefill(prompt, cancel):
                    return None
        finally:
            omp.release()
        import llama_cpp

        llm = self.llm
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(llm.n_vocab(),)).astype(np.float64)
        both = logits[list(yes) + list(no)]
        weights = np.exp(both - both.max())
        return float(weights[: len(yes)].sum() / weights.sum())

    def _grammar(self, schema: str) -> Any:
        """The grammar of a JSON schema, compiled once per slot."""
        from llama_cpp import LlamaGrammar

        cache: dict[str, Any] = self.__dict__.setdefault("_grammars", {})
        if schema not in cache:
            cache[schema] = LlamaGrammar.from_json_schema(schema, verbose=False)
        return cache[schema]

    def generate(self, prompt: list[int], messages: list[dict[str, str]], sampling: Sampling, stop: list[str],
                 cancel: threading.Event, emit: Callable[[str], bool], schema: dict[str, Any] | None = None,
                 abortable: bool = False) -> tuple[str, int]:
        """Generate an answer, calling ``emit`` with each token's text; blocks, so run it in a thread.

        With ``schema`` (a JSON schema), sampling is constrained by the grammar llama.cpp derives from it:
        the text is JSON of that shape (enrichment).

        ``prompt`` is the rendered prompt's tokens (``messages`` and ``stop`` are for
        remote backends; stop strings are applied to the text by the answer filter).

        Returns (finish reason, tokens generated): "stop" at an end-of-generation
        token, "length" at max_tokens, "cancelled" when ``cancel`` is set or
        ``emit`` returns False (the reader is gone). Both are looked at between
        any two tokens, and between prefill steps; with ``abortable`` (background work, which yields to a question)
        llama.cpp also looks at ``cancel`` inside each step, between two operations of its graph.
        """
        if len(prompt) + sampling.max_tokens > self.n_ctx:
            raise ValueError(f"chat: {len(prompt)} prompt tokens + {sampling.max_tokens} answer tokens exceed the {self.n_ctx}-token context")
        self._background = abortable  # a slot runs one call at a time
        try:
            with self._busy(), self._aborted_by(cancel) if abortable else contextlib.nullcontext():
                return self._generate(prompt, sampling, cancel, emit, schema)
        except StepAborted:
            return "cancelled", 0
        finally:
            self._background = False
            omp.release()  # this thread's OpenMP workers (omp.py: kept by every thread, they slow every step's barriers)

    @contextlib.contextmanager
    def _aborted_by(self, cancel: threading.Event) -> Iterator[None]:
        """While inside, a step stops within one operation of its graph once ``cancel`` is set, and raises StepAborted.

        Background work yields to a question between steps, but a step of an enrichment's prompt runs 64 tokens: up to
        a second on 2 cores, all of it in front of the question's first token. The check is a Python call per
        operation of the graph (about a thousand per step), so answers, which must not pay for it, never install it."""
        import llama_cpp

        ctx = self.llm._ctx.ctx
        check = llama_cpp.ggml_abort_callback(lambda _data: cancel.is_set())
        llama_cpp.llama_set_abort_callback(ctx, check, None)
        try:
            yield
        except RuntimeError as exc:  # llama_decode "returned 2": aborted; the next eval drops the KV cache past n_tokens
            if cancel.is_set() and "returned 2" in str(exc):
                raise StepAborted from None
            raise
        finally:
            llama_cpp.llama_set_abort_callback(ctx, llama_cpp.ggml_abort_callback(), None)

    def _generate(self, prompt: list[int], sampling: Sampling, cancel: threading.Event, emit: Callable[[str], bool],
                  schema: dict[str, Any] | None) -> tuple[str, int]:
        import llama_cpp

        llm = self.llm
        # Evaluate the prompt in steps so that a cancel lands quickly; generate()
        # then finds the prompt already in the KV cache (prefix match) and samples.
        # The part of the prompt the cache holds already (the system prompt, an earlier turn) is not evaluated again.
        if not self._prefill(prompt, cancel):
            return "cancelled", 0
        llm.set_seed(sampling.seed or 0xC0FFEE)
        greedy = sampling.temperature <= 0
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        produced = 0
        grammar = self._grammar(json.dumps(schema, sort_keys=True)) if schema is not None else None
        tokens = llm.generate(prompt, temp=0.0 if greedy else sampling.temperature, top_k=1 if greedy else 40,
                              top_p=1.0 if greedy else sampling.top_p, min_p=0.0 if greedy else 0.05,
                              repeat_penalty=self.repeat_penalty if grammar is None else 1.0, grammar=grammar)
        try:
            for token in tokens:
                if cancel.is_set():
                    return "cancelled", produced
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    return "stop", produced
                produced += 1
                text = decoder.decode(llm.detokenize([token]))
                if text and not emit(text):
                    return "cancelled", produced
                if produced >= sampling.max_tokens:
                    return "length", produced
                self._fit_threads()  # for the next token
        finally:
            tokens.close()
        return "stop", produced
