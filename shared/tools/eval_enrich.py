"""`tessera eval enrich`: how well enrichment types and tags notes, on labelled notes (tests/data/enrich/notes.json),
through the running mesh's chat backend (the Enrich RPC; nothing is stored).

Type accuracy: the share of notes given their labelled type. Tag overlap: per note, the share of its labelled tags
that a predicted tag matches (the same word after stemming, or one containing the other: "postgres" and
"postgresql"), averaged; and the mean Jaccard index of the two stemmed sets.

Tag precision: the share of predicted tags that match a labelled tag or name a word of the note (its title and text,
stemmed). Entity precision: the share of predicted entities that match a labelled one (case aside, one name containing
the other). Faithfulness: the share of summaries that state nothing absent from the note, checked on the facts a
summary can get wrong by itself: every number, and every name-like word (capitalised inside a sentence, all capitals,
or with a digit or a symbol) must appear in the note.

Each note has a ``split``: ``tune`` (what the prompt and the grammar may be shaped on) or ``test`` (held out: written
after the prompt was frozen and never looked at while tuning); ``--split`` evaluates one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

from shared.client import Client
from shared.errors import ConfigError
from shared.runtime import analyzer
from shared.runtime.config import PROJECT_ROOT, Settings
from shared.tools.evalsets import SPLITS, in_split, read_list, split_of

DEFAULT = PROJECT_ROOT / "tests" / "data" / "enrich" / "notes.json"
def load_notes(path: Path, split: str = "all") -> list[dict[str, Any]]:
    """The labelled notes of ``path`` in ``split`` (tune, test, or all); a clear error for a malformed file."""
    notes = []
    for i, note in enumerate(read_list(path, "--file", "notes")):
        if not isinstance(note, dict) or not all(isinstance(note.get(k), str) and note[k] for k in ("title", "text", "type")):
            raise ConfigError("--file", f"item {i} of {path} needs a title, a text and a type")
        if not isinstance(note.get("tags", []), list):
            raise ConfigError("--file", f"item {i} of {path}: tags must be a list")
        notes.append({"tags": [], **note, "split": split_of(note, i, path, "--file")})
    return in_split(notes, split, lambda n: str(n["split"]), path, "note")


def stem(tag: str) -> str:
    return " ".join(analyzer.terms(tag.replace("-", " "))) or tag.lower()


def tag_match(gold: str, predicted: list[str]) -> bool:
    g = stem(gold)
    return any(g == p or (len(g) > 3 and g in p) or (len(p) > 3 and p in g) for p in map(stem, predicted))


_FACT = re.compile(r"[A-Za-z0-9][\w.+#/-]*")


def facts(summary: str) -> list[str]:
    """The summary's checkable facts: numbers, and name-like words (not a sentence's first word unless it looks like a name)."""
    out = []
    for sentence in re.split(r"(?<=[.!?])\s+", summary):
        for i, m in enumerate(_FACT.finditer(sentence)):
            word = m.group(0).rstrip(".")
            name_like = (word[:1].isupper() and i > 0) or (len(word) > 1 and word.isupper()) or any(c.isdigit() for c in word) \
                or any(c in "+#/" for c in word) or (any(c.isupper() for c in word[1:]) and word[:1].islower())
            if name_like:
                out.append(word)
    return out


def unsupported(summary: str, note: str) -> list[str]:
    """The facts of ``summary`` that ``note`` never states (compared in lower case, and by stem for words)."""
    text = note.lower()
    stems = set(analyzer.terms(note))

    def stated(fact: str) -> bool:
        if fact.lower() in text:
            return True
        words = set(analyzer.terms(fact))  # a number must be there as written; a word may be there in another form
        return bool(words) and not any(c.isdigit() for c in fact) and words <= stems

    return [f for f in facts(summary) if not stated(f)]


def tag_supported(tag: str, gold: list[str], note: str) -> bool:
    return tag_match(tag, gold) or bool(set(analyzer.terms(tag.replace("-", " "))) & set(analyzer.terms(note)))


def entity_match(name: str, gold: list[str]) -> bool:
    n = name.lower()
    return any(n == g or (len(g) > 2 and g in n) or (len(n) > 2 and n in g) for g in (x.lower() for x in gold))


def score(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    right = sum(r["predicted_type"] == r["type"] for r in rows)
    recall = [sum(tag_match(t, r["predicted_tags"]) for t in r["tags"]) / len(r["tags"]) for r in rows if r["tags"]]
    jaccard = []
    for r in rows:
        a, b = {stem(t) for t in r["tags"]}, {stem(t) for t in r["predicted_tags"]}
        jaccard.append(len(a & b) / len(a | b) if a | b else 1.0)
    confusion: dict[str, dict[str, int]] = {}
    for r in rows:
        confusion.setdefault(r["type"], {}).setdefault(r["predicted_type"] or "-", 0)
        confusion[r["type"]][r["predicted_type"] or "-"] += 1
    predicted_tags = [(t, r) for r in rows for t in r["predicted_tags"]]
    tag_ok = sum(tag_supported(t, r["tags"], f"{r.get('title', '')} {r.get('text', '')}") for t, r in predicted_tags)
    labelled = [r for r in rows if "entities" in r]
    predicted_entities = [(e, r) for r in labelled for e in r.get("predicted_entities", [])]
    entity_ok = sum(entity_match(e, [x["name"] for x in r["entities"]]) for e, r in predicted_entities)
    summaries = [r for r in rows if r.get("summary")]
    faithful = [r for r in summaries if not unsupported(r["summary"], f"{r.get('title', '')} {r.get('text', '')}")]
    return {"notes": n, "type_accuracy": round(right / n, 3) if n else 0.0, "tag_overlap": round(sum(recall) / len(recall), 3) if recall else 0.0,
            "tag_jaccard": round(sum(jaccard) / n, 3) if n else 0.0, "unenriched": sum(r["state"] != "enriched" for r in rows),
            "tag_precision": round(tag_ok / len(predicted_tags), 3) if predicted_tags else 0.0,
            "entity_precision": round(entity_ok / len(predicted_entities), 3) if predicted_entities else 0.0,
            "faithfulness": round(len(faithful) / len(summaries), 3) if summaries else 0.0,
            "unfaithful": [{"title": r["title"], "unsupported": unsupported(r["summary"], f"{r.get('title', '')} {r.get('text', '')}")}
                           for r in summaries if r not in faithful][:10],
            "confusion": confusion}


async def evaluate(settings: Settings, path: Path, verbose: bool = False, split: str = "all") -> dict[str, Any]:
    notes = load_notes(path, split)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    async with Client(settings, timeout_s=600) as client:
        model = await client.chat_model()
        for note in notes:
            e = await client.enrich(text=note["text"], title=note["title"])
            row = {**note, "predicted_type": e.kind, "predicted_tags": list(e.tags), "state": e.state, "reason": e.reason,
                   "summary": e.summary, "predicted_entities": [x.name for x in e.entities]}
            rows.append(row)
            if verbose:
                mark = "✓" if e.kind == note["type"] else "✗"
                print(f"{mark} {note['title']}: {e.kind or e.state} (labelled {note['type']}); tags {list(e.tags)} vs {note['tags']}", flush=True)
    out = score(rows)
    out.update(model=model.name, profile=model.profile, backend=model.backend, split=split, seconds=round(time.perf_counter() - started, 1))
    return out


def cmd_eval_enrich(settings: Settings, args: argparse.Namespace) -> int:
    result = asyncio.run(evaluate(settings, Path(args.file), args.verbose, args.split))
    print(json.dumps(result))
    return 0


def add_command(ev: Any) -> None:
    p = ev.add_parser("enrich", help="type accuracy and tag overlap of enrichment on labelled notes, through the running mesh")
    p.add_argument("--file", default=str(DEFAULT), help="JSON list of {title, text, type, tags} (default: tests/data/enrich/notes.json)")
    p.add_argument("--split", default="all", choices=("all", *SPLITS), help="tune: the notes tuning may look at; test: the held-out "
                                                                        "ones; all (default): both")
    p.add_argument("--verbose", action="store_true", help="print each note's result")
    p.set_defaults(fn=cmd_eval_enrich)
