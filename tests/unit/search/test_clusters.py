"""Topic clusters: the groups found, their ids kept across runs, their names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from services.search import clusters as cl


def test_clusters_find_the_groups_and_keep_their_ids() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32))
    x = np.concatenate([c + 0.05 * rng.normal(size=(10, 32)) for c in centres])
    labels, centroids = cl.cluster(x, k=3)
    assert len(set(labels[:10])) == len(set(labels[10:20])) == len(set(labels[20:])) == 1 and len(set(labels)) == 3
    assert np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    assert cl.k_for(8) == 2 and cl.k_for(5000) == 50 and cl.k_for(10**6) == 60
    old = {7: {"a", "b", "c"}, 9: {"d", "e"}}
    assert cl.stable_ids({0: {"d", "e", "f"}, 1: {"a", "b"}, 2: {"z"}}, old, iter([100, 101])) == {0: 9, 1: 7, 2: 100}
    assert cl.stable_ids({0: {"a", "b", "c", "d", "e"}, 1: {"q"}}, old, iter([100])) == {0: 7, 1: 100}  # one old id per new cluster
    merges = cl.merge_suggestions([1, 2, 3], np.array([[1.0, 0], [0.99, 0.1], [0, 1.0]]), 0.9)
    assert [(m.a, m.b) for m in merges] == [(1, 2)]


def test_cluster_names_are_their_most_distinctive_terms() -> None:
    names = cl.ctfidf_names({0: ["espresso grinder espresso", "espresso shot and the grinder"],
                             1: ["kubernetes pod restarts", "kubernetes deployment pod"]}, top=2)
    assert names[0] == ["espresso", "grinder"] and names[1] == ["kubernetes", "pod"]
    assert cl.name_of(["a", "b", "c", "d"]) == "a, b, c" and cl.name_of([]) == "unnamed"


def test_a_growing_project_is_clustered_once_it_stops_growing() -> None:
    from services.search.cluster_upkeep import full_run_due

    hour = 3600.0
    assert full_run_due(40, None, None, None, hour), "a project never clustered is clustered at once"
    assert not full_run_due(400, 100, 60.0, 300, hour), "an import in progress: not at each quarter of its way"
    assert full_run_due(400, 100, 60.0, 400, hour), "the import ended: one run over all of it"
    assert not full_run_due(110, 100, 60.0, 110, hour), "grew by less than a quarter: new documents join their nearest cluster"
    assert full_run_due(101, 100, hour + 1, 90, hour), "the last run is older than the interval: now, growing or not"


def test_upkeep_clusters_on_its_share_of_the_cores_from_the_first_run() -> None:
    """In a fresh process (scikit-learn not loaded yet, as in a search process that has not clustered), k-means and the
    layout run with every OpenMP and BLAS pool held to the threads upkeep is given: the pools scikit-learn loads are
    loaded before they are held."""
    code = """
import json, numpy as np
from services.search import clusters
from threadpoolctl import threadpool_info
seen = []
real = clusters.layout
def layout(v, seed=0):
    seen.extend((p["internal_api"], p["num_threads"]) for p in threadpool_info())
    return real(v, seed)
clusters.layout = layout
clusters.cluster_and_layout(np.random.default_rng(0).normal(size=(40, 8)).astype("float32"), 1)
print(json.dumps(seen))
"""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=Path(__file__).resolve().parents[3])
    seen = json.loads(out.stdout.splitlines()[-1])
    assert "openmp" in {api for api, _ in seen} and {n for _, n in seen} == {1}, seen
