"""The query encoder in the search process (ONNX) against the embed service's model (torch, fp32)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from services.embed.encoder import Encoder
from shared.runtime import query_encoder
from shared.runtime.query_encoder import OnnxEncoder, default_model_dir, export, exportable, is_exported, model_key

QUERIES = [
    "kettle descaling with vinegar", "How often should a bike chain be lubricated?", "0-dimensional biomaterials show inductive properties.",
    "what is the boiling point of water at altitude", "PostgreSQL HNSW ef_search tuning", "résumé café naïve — ünïcödé", "a",
    "Vitamin D deficiency is associated with multiple sclerosis risk in northern latitudes.",
    "transformers tokenization truncation " * 60,  # past the model's 256 tokens: both truncate the same way
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(default_model_dir(), tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return Encoder("all-MiniLM-L6-v2", default_model_dir(), "cpu").encode(QUERIES)


@pytest.mark.parametrize(("variant", "mean_floor", "min_floor"), [("fp32", 0.99999, 0.9999), ("int8", 0.99, 0.98)])
def test_vectors_match_the_embed_services(exported: Path, reference: np.ndarray, variant: str, mean_floor: float, min_floor: float) -> None:
    vectors = OnnxEncoder(exported, variant).encode(QUERIES)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.mean() >= mean_floor and cosines.min() >= min_floor, cosines.round(5).tolist()


def test_a_query_alone_or_in_a_batch_has_one_vector(exported: Path) -> None:
    enc = OnnxEncoder(exported, "int8")
    alone = np.stack([enc.encode([q])[0] for q in QUERIES[:4]])
    assert np.array_equal(alone, enc.encode(QUERIES[:4]))


def test_the_export_is_keyed_by_the_model_and_made_once(exported: Path, tmp_path: Path) -> None:
    assert is_exported(exported) and exported.name == model_key(default_model_dir())
    assert export(default_model_dir(), exported.parent) == exported  # found, not made again
    changed = tmp_path / "model"
    shutil.copytree(default_model_dir(), changed)
    config = json.loads((changed / "config.json").read_text())
    (changed / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-6}))
    assert model_key(changed) != model_key(default_model_dir())  # a changed model is exported again, never served stale


def test_models_it_cannot_reproduce_are_refused(tmp_path: Path) -> None:
    assert exportable(default_model_dir()) == ""
    assert "not a sentence-transformers model" in exportable(tmp_path)
    cls = tmp_path / "cls"
    shutil.copytree(default_model_dir(), cls)
    pooling = json.loads((cls / "1_Pooling" / "config.json").read_text())
    (cls / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert "not the mean" in exportable(cls)
    with pytest.raises(ValueError, match="not the mean"):
        export(cls, tmp_path / "cache")
    assert query_encoder.main(["--model", str(cls), "--cache", str(tmp_path / "cache")]) == 2
