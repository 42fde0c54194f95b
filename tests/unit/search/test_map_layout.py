"""The map's clustering and layout (services/search/clusters.py) and its picture (shared/tools/map_png.py): the cluster
count adapts to the notes by silhouette, every note gets a place in [0, 1]², and the PNG draws each cluster's colour."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from PIL import Image

from services.search import clusters as cl
from shared.tools import map_png


def topics(k: int, per: int, seed: int = 0, spread: float = 0.6) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, 384))
    x = np.concatenate([c + spread * rng.normal(size=(per, 384)) for c in centres])
    return x.astype(np.float32), [t for t in range(k) for _ in range(per)]


@pytest.mark.parametrize("k", [3, 5])
def test_the_count_follows_the_notes_not_sqrt_n(k: int) -> None:
    x, truth = topics(k, 4)
    assert cl.k_for(len(x)) != k or k == 3  # sqrt(n / 2) would not find 5 subjects in 20 notes
    labels, centroids, score = cl.cluster_adaptive(x)
    assert len(set(labels.tolist())) == k and centroids.shape == (k, 384)
    assert cl.purity(labels.tolist(), [str(t) for t in truth]) == 1.0 and 0 < score <= 1


def test_candidates_stay_in_bounds() -> None:
    assert cl.k_candidates(1) == [] and cl.k_candidates(3) == [2] and cl.k_candidates(13) == [2, 3, 4, 5, 6]
    big = cl.k_candidates(100_000)
    assert cl.k_for(100_000) in big and max(big) <= 60 and min(big) >= 2


def test_every_note_gets_a_place_and_neighbours_stay_together() -> None:
    x, truth = topics(3, 10, seed=1)
    xy = cl.layout(x)
    assert xy.shape == (30, 2) and xy.min() >= 0 and xy.max() <= 1
    centres = np.stack([xy[np.array(truth) == t].mean(axis=0) for t in range(3)])
    within = max(np.linalg.norm(xy[i] - centres[truth[i]]) for i in range(30))
    between = min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3))
    assert within < between
    assert cl.layout(x[:1]).shape == (1, 2) and cl.layout(x[:0]).shape == (0, 2)


def test_a_note_placed_between_runs_sits_beside_its_cluster_every_time() -> None:
    doc = uuid.uuid4()
    assert cl.near((0.4, 0.6), doc) == cl.near((0.4, 0.6), doc)
    x, y = cl.near((0.4, 0.6), doc)
    assert abs(x - 0.4) <= 0.03 and abs(y - 0.6) <= 0.03 and cl.near(None, doc) != (0.4, 0.6)


def test_purity_counts_each_clusters_majority() -> None:
    assert cl.purity([0, 0, 0, 1, 1, 1], list("aabbbb")) == pytest.approx(5 / 6)


def test_the_picture_draws_each_cluster_in_its_colour() -> None:
    dots = [map_png.Dot(0.1, 0.1, 7), map_png.Dot(0.12, 0.15, 7), map_png.Dot(0.9, 0.9, 9)]
    png = map_png.render(dots, {7: "raft, election", 9: "css, grid"}, "Tessera map: 3 notes", width=400, height=300)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    assert img.size == (400, 300)
    colours = {img.getpixel((x, y)) for x in range(400) for y in range(300)}
    for cid in (7, 9):
        hex_ = map_png.colour_of(cid, [7, 9]).lstrip("#")
        assert tuple(int(hex_[i:i + 2], 16) for i in (0, 2, 4)) in colours
