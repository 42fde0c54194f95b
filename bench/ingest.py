"""Ingest throughput of the mesh against a raw encode of the same chunks with the same runtime, and the encoder
runtimes against each other.

Starts an isolated mesh (fresh data directory, free ports), ingests the SciFact
corpus end to end through IngestPath (parse, chunk, Postgres, JetStream, embed
workers, pgvector) and times it until every chunk is embedded (= fully
searchable). Then encodes exactly the texts the workers embedded in this process, with the embed service's runtime
(embed.runtime: the ONNX export at int8 by default): raw_cps. Then, on the first ``ENCODER_SAMPLE`` of those texts, torch
fp32 (as the service ran before), ONNX fp32 and ONNX int8, one text per run: their chunks/s, and int8's cosines to
fp32. Last line: JSON.

    make bench-ingest                      # whole corpus (about 10k chunks: ~20 min on 2 cores)
    python bench/ingest.py --limit 1000    # the first 1000 documents
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ProcessMonitor, corpus_args, ingest, isolated_settings, tessera
from prometheus_client.parser import text_string_to_metric_families

from services.embed.encoder import Encoder
from services.embed.server import chunk_input
from shared.runtime import secrets
from shared.runtime.query_encoder import default_cache_dir, default_model_dir, export_dir
from shared.tools.eval_beir import write_corpus

ENCODER_SAMPLE = 2000
#: Enrichment and the weekly review off: they are chat's background work, which yields to imports (knowledge upkeep);
#: this measures the embedding path itself, files to searchable.
MESH = {"TESSERA_ENRICH": "off", "TESSERA_REVIEW_SCHEDULE": "off"}


def embed_counters(port: int) -> dict[tuple[str, str], float]:
    """The embed service's tessera_embed_texts_total, tessera_embed_tokens_total and the time it spent encoding
    (tessera_embed_batch_seconds_sum), by (name, kind)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {(s.name, s.labels.get("kind", "")): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name in ("tessera_embed_texts_total", "tessera_embed_tokens_total",
                                             "tessera_embed_batch_seconds_sum")}


def main() -> None:
    _, corpus, _ = corpus_args(__doc__.splitlines()[0], default_limit=0)
    settings = isolated_settings(**MESH)
    folder = settings.path("imports", "beir", "scifact")
    write_corpus(corpus, folder)
    print(f"starting an isolated mesh in {settings.path()} …", flush=True)
    tessera(settings, "up", "--timeout", "300")
    try:
        with ProcessMonitor(settings.path()) as monitor:
            start = time.perf_counter()
            job = asyncio.run(ingest(settings, str(folder), "bench"))
            mesh_s = time.perf_counter() - start
        chunks = job.counts.chunks_embedded
        counters = embed_counters(settings.metrics_port("embed"))
        with psycopg.connect(secrets.database_url(settings)) as conn:
            rows = conn.execute("SELECT context, text FROM chunks WHERE project = 'bench' ORDER BY document_id, ord").fetchall()
    finally:
        tessera(settings, "down")
    texts = [chunk_input(c, t) for c, t in rows]
    onnx = export_dir(default_cache_dir(), default_model_dir())
    encoder = Encoder(settings.embed_model, default_model_dir(), "cpu", 64, onnx, settings.embed.runtime)
    encoder.encode(texts[:64])  # warm-up, as the service is warm
    start = time.perf_counter()
    encoder.encode(texts)
    raw_s = time.perf_counter() - start
    runtimes = compare_runtimes(texts[:ENCODER_SAMPLE], onnx)
    mesh_cps, raw_cps = chunks / mesh_s, len(texts) / raw_s
    print(f"mesh: {len(corpus)} docs, {chunks} chunks fully searchable in {mesh_s:.1f} s "
          f"({len(corpus) / mesh_s:.1f} docs/s, {mesh_cps:.1f} chunks/s)")
    print(f"raw {encoder.runtime}: {len(texts)} chunks in {raw_s:.1f} s ({raw_cps:.1f} chunks/s)")
    encoded = counters.get(("tessera_embed_texts_total", "chunk"), 0.0)
    tokens, padding = (counters.get(("tessera_embed_tokens_total", k), 0.0) for k in ("text", "padding"))
    print(f"CPU seconds per process during the import: {monitor.cpu_s()}")
    print(json.dumps({"mesh_chunks_per_s": round(mesh_cps, 2), "raw_encode_chunks_per_s": round(raw_cps, 2),
                      "ratio": round(mesh_cps / raw_cps, 3), "docs": len(corpus), "chunks": chunks,
                      "mesh_docs_per_s": round(len(corpus) / mesh_s, 2), "time_to_searchable_s": round(mesh_s, 1),
                      "failed": job.counts.failed, "runtime": encoder.runtime, "raw_cps": round(raw_cps, 2),
                      "mesh_cps": round(mesh_cps, 2), "mesh_over_raw": round(mesh_cps / raw_cps, 3),
                      "encode_calls_per_chunk": round(encoded / chunks, 3) if chunks else None, "peak_rss_mb": monitor.peak_rss_mb(),
                      "padding_waste": round(padding / (tokens + padding), 4) if tokens + padding else None,
                      "encoder_busy": round(counters.get(("tessera_embed_batch_seconds_sum", ""), 0.0) / mesh_s, 3),
                      "cpu_s": monitor.cpu_s(), **runtimes}))


def compare_runtimes(texts: list[str], onnx: Path) -> dict[str, float | int]:
    """torch fp32, ONNX fp32 and ONNX int8 on the same texts, each warmed up first: chunks/s, and int8's cosine to fp32."""
    out: dict[str, float | int] = {"encoder_sample": len(texts)}
    vectors = {}
    for name, variant in (("encoder_fp32_cps", "torch"), ("encoder_onnx_fp32_cps", "fp32"), ("encoder_int8_cps", "int8")):
        enc = Encoder("all-MiniLM-L6-v2", default_model_dir(), "cpu", 64, onnx, variant)
        enc.encode(texts[:16])
        start = time.perf_counter()
        vectors[variant] = enc.encode(texts)
        out[name] = round(len(texts) / (time.perf_counter() - start), 2)
    cosines = (vectors["int8"] * vectors["torch"]).sum(axis=1)
    out.update(encoder_speedup=round(float(out["encoder_int8_cps"]) / float(out["encoder_fp32_cps"]), 2),
               cosine_mean=round(float(cosines.mean()), 4), cosine_min=round(float(cosines.min()), 4))
    return out


if __name__ == "__main__":
    main()
