"""The embed service's direct path (transformers + mean pooling + normalisation) gives sentence-transformers'
vectors: stored vectors and new ones stay comparable."""

from __future__ import annotations

import random

import numpy as np

from services.embed.encoder import Encoder
from shared.runtime.query_encoder import default_model_dir


def test_direct_path_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    path = default_model_dir()
    encoder = Encoder("all-MiniLM-L6-v2", path, "cpu", batch_size=16)
    assert encoder._direct is not None and (encoder.dim, encoder.max_seq_length) == (384, 256)
    rng = random.Random(5)
    words = ["kettle", "vinegar", "descale", "chain", "lubricate", "bicycle", "sourdough", "starter", "flour", "water", "oven",
             "bread", "Übergröße", "東京", "☕"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 600))) for _ in range(40)] + ["", "a", "x" * 4000]
    ours = encoder.encode(texts)
    reference = SentenceTransformer(str(path), device="cpu", local_files_only=True).encode(
        texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
    assert float(np.abs(ours - reference).max()) < 1e-5
