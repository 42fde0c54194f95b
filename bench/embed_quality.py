"""Does the int8 encoder keep search quality? Hybrid nDCG@10 through the mesh with fp32 and with int8 document vectors,
on SciFact train and Cranfield, and each whole import's time (issue 32). Last line: JSON with scifact_train_ndcg10_fp32,
scifact_train_ndcg10_int8, cranfield_ndcg10_fp32, cranfield_ndcg10_int8, their deltas (int8 - fp32, target within
0.005 either way), and per runtime and corpus the import's chunks/s, files to searchable.

Each run is an isolated mesh (enrichment and the weekly review off, as bench-ingest) with TESSERA_EMBED_RUNTIME set;
queries are encoded as the search service always encodes them (search.query_encoder, int8 by default), so the
difference is the documents' vectors alone. About 25 minutes on 2 cores.

    make bench-embed-quality        (bench/embed_quality.py --limit N: the first N documents of each corpus)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, scifact_mesh
from search import MESH, mesh_ndcg, stems_of

from shared.runtime import secrets
from shared.runtime.config import Settings
from shared.tools.eval_beir import load_beir

RUNTIMES = ("fp32", "int8")


def chunks_of(settings: Settings, project: str) -> int:
    with psycopg.connect(secrets.database_url(settings)) as conn:
        row = conn.execute("SELECT count(*) FROM chunk_vectors WHERE project = %s", (project,)).fetchone()
    return int(row[0]) if row else 0


def measure(name: str, directory: Path, limit: int) -> dict[str, float]:
    corpus, queries, qrels = load_beir(directory, "train")
    if limit:
        corpus = dict(list(corpus.items())[:limit])
    stems = stems_of(corpus)
    out: dict[str, float] = {}
    for runtime in RUNTIMES:
        started = time.perf_counter()
        with scifact_mesh(corpus, name, **MESH, TESSERA_EMBED_RUNTIME=runtime) as settings:
            seconds = time.perf_counter() - started
            chunks = chunks_of(settings, name)
            out[f"{name}_ndcg10_{runtime}"] = asyncio.run(mesh_ndcg(settings, name, queries, qrels, stems))
        out[f"{name}_import_cps_{runtime}"] = round(chunks / seconds, 2)
        out[f"{name}_chunks"] = chunks
        print(f"{name} {runtime}: {chunks} chunks in {seconds:.0f} s (mesh start included), "
              f"nDCG@10 {out[f'{name}_ndcg10_{runtime}']}", flush=True)
    out[f"{name}_ndcg10_delta"] = round(out[f"{name}_ndcg10_int8"] - out[f"{name}_ndcg10_fp32"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--cranfield", default=str(ROOT.parent / "shared" / "data" / "cranfield"))
    parser.add_argument("--limit", type=int, default=0, help="only the first N documents of each corpus (0: all)")
    args = parser.parse_args()
    result = {**measure("scifact_train", Path(args.scifact), args.limit), **measure("cranfield", Path(args.cranfield), args.limit)}
    result["within_0_005"] = all(abs(result[f"{c}_ndcg10_delta"]) <= 0.005 for c in ("scifact_train", "cranfield"))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
