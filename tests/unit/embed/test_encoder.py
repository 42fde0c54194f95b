"""The embed service's two runtimes (its ONNX export at fp32 on a CPU; transformers + mean pooling + normalisation
otherwise) give sentence-transformers' vectors: stored vectors and new ones stay comparable."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from services.embed.encoder import Encoder
from shared.runtime.query_encoder import default_cache_dir, default_model_dir, export


@pytest.mark.parametrize("runtime", ["torch", "onnx fp32"])
def test_each_runtime_matches_sentence_transformers(runtime: str) -> None:
    from sentence_transformers import SentenceTransformer

    path = default_model_dir()
    onnx = export(path, default_cache_dir()) if runtime != "torch" else None  # make setup exported it; found, not made again
    encoder = Encoder("all-MiniLM-L6-v2", path, "cpu", batch_size=16, onnx=onnx, variant=runtime.split()[-1])
    assert encoder.runtime == runtime and (encoder.dim, encoder.max_seq_length) == (384, 256)
    rng = random.Random(5)
    words = ["kettle", "vinegar", "descale", "chain", "lubricate", "bicycle", "sourdough", "starter", "flour", "water", "oven",
             "bread", "Übergröße", "東京", "☕"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 600))) for _ in range(40)] + ["", "a", "x" * 4000]
    ours = encoder.encode(texts)
    reference = SentenceTransformer(str(path), device="cpu", local_files_only=True).encode(
        texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
    assert float(np.abs(ours - reference).max()) < 1e-5


def test_int8_stays_within_a_cosine_of_0_99_on_real_abstracts() -> None:
    """embed.runtime int8 against fp32 on the 150 Cranfield abstracts in tests/data, one text per run: a text's vector
    does not depend on what else is encoded with it."""
    path = default_model_dir()
    onnx = export(path, default_cache_dir())
    corpus = (Path(__file__).parents[2] / "data" / "cranfield-150" / "corpus.jsonl").read_text().splitlines()
    texts = [f"{d['title']}\n{d['text']}" for d in map(json.loads, corpus)]
    assert len(texts) == 150
    int8 = Encoder("all-MiniLM-L6-v2", path, "cpu", onnx=onnx, variant="int8")
    assert int8.runtime == "onnx int8"
    ours, reference = int8.encode(texts), Encoder("all-MiniLM-L6-v2", path, "cpu", onnx=onnx).encode(texts)
    cosines = (ours * reference).sum(axis=1)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, (cosines.mean(), cosines.min())
    assert np.array_equal(int8.encode(texts[3:4])[0], ours[3])


def test_texts_run_at_once_on_the_mesh_s_cores() -> None:
    """One text per core of the mesh's budget (TESSERA_CPU_CORES), not per CPU of the machine; the vectors are the
    same however many run at once."""
    path = default_model_dir()
    onnx = export(path, default_cache_dir())
    three = Encoder("all-MiniLM-L6-v2", path, "cpu", onnx=onnx, variant="int8", cores=3)
    one = Encoder("all-MiniLM-L6-v2", path, "cpu", onnx=onnx, variant="int8", cores=1)
    assert three._onnx is not None and three._onnx._pool is not None and three._onnx._pool._max_workers == 3
    assert one._onnx is not None and one._onnx._pool is None  # one text at a time, on the calling thread
    texts = [f"note {i}: descale the kettle with vinegar" for i in range(7)]
    assert np.array_equal(three.encode(texts), one.encode(texts))


def test_without_an_export_it_embeds_on_torch(tmp_path: Path) -> None:
    """An export missing from the cache (never made, or of another model) is not an error: torch serves."""
    encoder = Encoder("all-MiniLM-L6-v2", default_model_dir(), "cpu", onnx=tmp_path / "absent")
    assert encoder.runtime == "torch" and encoder.encode(["kettle"]).shape == (1, 384)
