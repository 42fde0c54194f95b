"""`tessera eval beir DIR --split train`: retrieval quality through the real mesh.

The corpus is written as one markdown file per document under
``<data_dir>/imports/beir/<name>/`` and ingested with IngestPath into the project
``beir-<name>`` (the user's notes are neither touched nor searched; a second run
finds every file unchanged by content hash). Each judged query is then searched
in lexical, vector and hybrid mode (top 100) and scored against the qrels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from pathlib import Path

from rich.table import Table

from shared.client import Client, StatusError
from shared.errors import ConfigError, DependencyError
from shared.gen.tessera.v1 import ingest_pb2, search_pb2
from shared.runtime.config import Settings
from shared.tools import eval_answers, eval_enrich
from shared.tools.ir_metrics import evaluate
from shared.tools.progress import console, ingest_with_progress

MODES = {"lexical": search_pb2.SEARCH_MODE_LEXICAL, "vector": search_pb2.SEARCH_MODE_VECTOR, "hybrid": search_pb2.SEARCH_MODE_HYBRID}
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def load_beir(directory: Path, split: str) -> tuple[dict[str, tuple[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus id -> (title, text), query id -> text, qrels) of a BEIR folder."""
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (directory / name).is_file():
            raise ConfigError("DIR", f"{directory / name} is missing; a BEIR folder has corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    corpus = {}
    for line in (directory / "corpus.jsonl").read_text().splitlines():
        if line.strip():
            doc = json.loads(line)
            corpus[str(doc["_id"])] = (doc.get("title") or "", doc.get("text") or "")
    queries = {str(q["_id"]): q["text"] for q in map(json.loads, filter(str.strip, (directory / "queries.jsonl").read_text().splitlines()))}
    qrels: dict[str, dict[str, int]] = {}
    for i, line in enumerate((directory / "qrels" / f"{split}.tsv").read_text().splitlines()):
        parts = line.split("\t")
        if i == 0 and not parts[-1].strip().lstrip("-").isdigit():
            continue  # header
        qid, did, rel = parts[0], parts[1], int(parts[2])
        qrels.setdefault(qid, {})[did] = rel
    return corpus, queries, qrels


def file_name(doc_id: str) -> str:
    return _SAFE.sub("_", doc_id) + ".md"


def write_corpus(corpus: dict[str, tuple[str, str]], target: Path) -> dict[str, str]:
    """One markdown file per document (rewritten only when it changed); returns file stem -> doc id."""
    target.mkdir(parents=True, exist_ok=True)
    stems = {}
    for doc_id, (title, text) in corpus.items():
        name = file_name(doc_id)
        body = (f"# {title}\n\n{text}\n" if title else f"{text}\n").encode()
        path = target / name
        if not path.exists() or path.read_bytes() != body:
            path.write_bytes(body)
        stems[name[:-3]] = doc_id
    return stems


async def run_queries(settings: Settings, project: str, queries: dict[str, str], stems: dict[str, str],
                      concurrency: int = 8) -> dict[str, dict[str, list[str]]]:
    runs: dict[str, dict[str, list[str]]] = {m: {} for m in MODES}
    gate = asyncio.Semaphore(concurrency)

    async with Client(settings, timeout_s=60) as client:
        async def one(mode: str, qid: str, text: str) -> None:
            async with gate:
                try:
                    reply = await client.search(text, top_k=100, mode=mode, project=project)
                except StatusError as exc:
                    raise DependencyError(f"eval: search failed for query {qid} ({exc.code}: {exc})") from None
                runs[mode][qid] = [stems.get(Path(h.source.path).stem, "") for h in reply.hits]

        await asyncio.gather(*(one(mode, qid, text) for mode in MODES for qid, text in queries.items()))
    return runs


async def ingest(settings: Settings, folder: str, project: str, quiet: bool) -> ingest_pb2.IngestJob:
    async with Client(settings) as client:
        return await ingest_with_progress(client, folder, project, quiet)


def cmd_eval_beir(settings: Settings, args: argparse.Namespace) -> int:
    directory = Path(args.dir).expanduser().resolve()
    corpus, queries, qrels = load_beir(directory, args.split)
    name = _SAFE.sub("-", directory.name.lower())
    project = f"beir-{name}"
    target = settings.path("imports", "beir", name)
    stems = write_corpus(corpus, target)
    console.print(f"{len(corpus)} documents → {target}; ingesting into project {project!r}")
    job = asyncio.run(ingest(settings, str(target), project, args.quiet))
    if job.counts.failed:
        console.print(f"[yellow]{job.counts.failed} documents failed to ingest[/]")
    judged = {q: queries[q] for q in qrels if q in queries}
    console.print(f"searching {len(judged)} judged queries of the {args.split} split in 3 modes …")
    runs = asyncio.run(run_queries(settings, project, judged, stems))
    results = {mode: evaluate(qrels, runs[mode]) for mode in MODES}
    table = Table(title=f"BEIR {name} ({args.split}, {len(judged)} queries)")
    for col in ("mode", "nDCG@10", "Recall@100", "MRR@10"):
        table.add_column(col)
    for mode, m in results.items():
        table.add_row(mode, f"{m['ndcg@10']:.4f}", f"{m['recall@100']:.4f}", f"{m['mrr@10']:.4f}")
    console.print(table)
    print(json.dumps({**results, "dataset": name, "split": args.split, "queries": len(judged), "documents": len(corpus),
                      "fusion": settings.search.fusion, "lexical_weight": settings.search.lexical_weight,
                      "feedback": [settings.search.feedback_docs, settings.search.feedback_weight],
                      "bm25": [settings.search.bm25_k1, settings.search.bm25_b]}))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="retrieval quality").add_subparsers(dest="eval_command", required=True)
    p = ev.add_parser("beir", help="nDCG@10, Recall@100, MRR@10 on a BEIR-layout dataset, through the mesh")
    p.add_argument("dir")
    p.add_argument("--split", default="train")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_eval_beir)
    eval_answers.add_command(ev)
    eval_enrich.add_command(ev)
