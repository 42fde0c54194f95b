"""Cluster quality on a labelled set (issue 33): Cranfield documents grouped by the query they were judged relevant to.

The set: Cranfield queries with at least 5 relevant documents, taken in query order while their documents are not
already taken, until 20 groups; each document's label is its query. The documents are encoded as embed stores them
(the service's runtime, in this process), then clustered two ways in the same run:
- fixed: k = sqrt(n / 2), the previous design;
- adaptive: the candidate count with the best silhouette (services/search/clusters.py, what search runs now).

Purity (each cluster's majority label), silhouette (cosine) and k for each, the oracle purity at k = the number of
groups for scale, and the map layout's time. Prints one JSON line."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT

from services.embed.encoder import Encoder
from services.embed.server import chunk_input
from services.search import clusters as cl
from shared.runtime.config import load_settings
from shared.runtime.query_encoder import default_cache_dir, default_model_dir, export_dir

CRANFIELD = ROOT.parent / "shared" / "data" / "cranfield"
GROUPS, MIN_GROUP = 20, 5


def labelled() -> tuple[list[str], list[str]]:
    """(texts, labels): the documents of the chosen query groups, as embed would see a note of each."""
    docs = {d["_id"]: d for d in map(json.loads, (CRANFIELD / "corpus.jsonl").open())}
    groups: dict[str, list[str]] = defaultdict(list)
    for path in sorted((CRANFIELD / "qrels").glob("*.tsv")):
        for line in path.read_text().splitlines()[1:]:
            q, d, score = line.split("\t")
            if int(score) > 0 and d in docs:
                groups[q].append(d)
    taken: set[str] = set()
    texts, labels = [], []
    for q in sorted(groups, key=int):
        mine = [d for d in dict.fromkeys(groups[q]) if d not in taken]
        if len(mine) < MIN_GROUP or len(mine) < len(groups[q]):
            continue
        taken.update(mine)
        for d in mine:
            title = docs[d]["title"].strip().rstrip(" .")
            texts.append(chunk_input(title, docs[d]["text"]))
            labels.append(q)
        if len({*labels}) == GROUPS:
            break
    return texts, labels


def main() -> None:
    texts, labels = labelled()
    settings = load_settings()
    onnx = export_dir(default_cache_dir(), default_model_dir())
    encoder = Encoder(settings.embed_model, default_model_dir(), "cpu", 64, onnx, settings.embed.runtime)
    x = cl.normalise(np.asarray(encoder.encode(texts), dtype=np.float32))
    fixed_labels, _ = cl.cluster(x)
    start = time.perf_counter()
    adaptive_labels, _, adaptive_score = cl.cluster_adaptive(x)
    adaptive_s = time.perf_counter() - start
    oracle_labels, _ = cl.cluster(x, len(set(labels)))
    start = time.perf_counter()
    cl.layout(x)
    layout_s = time.perf_counter() - start
    print(json.dumps({
        "documents": len(texts), "groups": len(set(labels)), "runtime": settings.embed.runtime,
        "k_fixed": len(set(fixed_labels.tolist())), "purity_fixed": round(cl.purity(fixed_labels.tolist(), labels), 4),
        "silhouette_fixed": round(cl.silhouette(x, fixed_labels), 4),
        "k_adaptive": len(set(adaptive_labels.tolist())), "purity_adaptive": round(cl.purity(adaptive_labels.tolist(), labels), 4),
        "silhouette_adaptive": round(adaptive_score, 4), "adaptive_s": round(adaptive_s, 2),
        "purity_oracle_k": round(cl.purity(oracle_labels.tolist(), labels), 4), "layout_s": round(layout_s, 2)}))


if __name__ == "__main__":
    main()
