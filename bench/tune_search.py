"""Sweep BM25 (k1, b) and the RRF constant on a BEIR split, against the live index
that `tessera eval beir` built (project beir-<name>). Uses the search service's own
SQL builders and fusion, so what wins here is what the service would return.
Tune on train only; the test split is measured elsewhere.

    python bench/tune_search.py ../shared/data/scifact --split train
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async

from services.search.fusion import Candidate, fuse_rrf
from services.search.store import lexical_sql, vector_sql
from shared.client import Client
from shared.gen.tessera.v1 import common_pb2
from shared.runtime.config import load_settings
from shared.runtime.db import VECTOR_SESSION
from shared.tools.eval_beir import load_beir
from shared.tools.ir_metrics import evaluate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--split", default="train")
    args = parser.parse_args()
    settings = load_settings()
    directory = Path(args.dir).resolve()
    _, queries, qrels = load_beir(directory, args.split)
    project = f"beir-{directory.name.lower()}"
    judged = {q: queries[q] for q in qrels if q in queries}
    filters = common_pb2.Filters(project=project)
    async with Client(settings, timeout_s=300) as client:
        ids = list(judged)
        vectors = {}
        for i in range(0, len(ids), 64):
            reply = await client.embed([judged[q] for q in ids[i:i + 64]], query=True)
            vectors.update({q: np.asarray(v.values, dtype=np.float32) for q, v in zip(ids[i:i + 64], reply.vectors, strict=True)})
    conn = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    await register_vector_async(conn)
    n, avgdl = await (await conn.execute("SELECT count(*), avg(doc_len) FROM chunks WHERE project = %s", (project,))).fetchone()  # type: ignore[misc]
    path_to_id = {}
    for pid, path in await (await conn.execute("SELECT id::text, path FROM documents WHERE project = %s", (project,))).fetchall():
        path_to_id[pid] = Path(path).stem
    lexemes, df = {}, {}
    for q, text in judged.items():
        lexemes[q] = list((await (await conn.execute("SELECT tsvector_to_array(to_tsvector('english', %s))", (text,))).fetchone())[0])  # type: ignore[index]
        for lx in lexemes[q]:
            if lx not in df:
                r = await (await conn.execute("SELECT count(*) FROM chunks WHERE project = %s AND tsv @@ quote_literal(%s)::tsquery",
                                              (project, lx))).fetchone()
                df[lx] = int(r[0])  # type: ignore[index]
    vec_runs: dict[str, list[Candidate]] = {}
    async with conn.transaction():
        await conn.execute(VECTOR_SESSION)
        for q in judged:
            sql, params = vector_sql(vectors[q], filters, 100)
            rows = await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]
            vec_runs[q] = sorted((Candidate(str(r[0]), str(r[1]), float(r[2])) for r in rows), key=lambda c: -c.score)
    results = []
    for k1, b in itertools.product((0.9, 1.2, 1.5), (0.4, 0.6, 0.75)):
        s = settings.with_overrides(bm25_k1=k1, bm25_b=b)
        lex_runs = {}
        for q in judged:
            if not lexemes[q]:
                lex_runs[q] = []
                continue
            sql, params = lexical_sql(s, lexemes[q], filters, 100, (int(n), float(avgdl), df))
            rows = await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]
            lex_runs[q] = [Candidate(str(r[0]), str(r[1]), float(r[2])) for r in rows]
        lexical = evaluate(qrels, {q: [path_to_id[c.document_id] for c in fuse_rrf({"l": lex_runs[q]}, limit=100)] for q in judged})
        for k in (10, 20, 40, 60, 100):
            run = {q: [path_to_id[f.document_id] for f in fuse_rrf({"lexical": lex_runs[q], "vector": vec_runs[q]}, k=k, limit=100)]
                   for q in judged}
            hybrid = evaluate(qrels, run)
            results.append({"k1": k1, "b": b, "rrf_k": k, "lexical_ndcg@10": lexical["ndcg@10"], **{f"hybrid_{m}": v for m, v in hybrid.items()}})
            print(json.dumps(results[-1]), flush=True)
    vector = evaluate(qrels, {q: [path_to_id[c.document_id] for c in fuse_rrf({"v": vec_runs[q]}, limit=100)] for q in judged})
    best = max(results, key=lambda r: r["hybrid_ndcg@10"])
    print(json.dumps({"vector": vector, "best": best}))
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
