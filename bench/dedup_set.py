"""Build the labelled dedup set, tests/data/dedup/pairs.jsonl: a note, a capture, and whether the capture repeats it.

Positives (``repeat: true``) are text already in the note, word for word or nearly:
- ``repeat_exact``: one section's paragraph, verbatim, under another title;
- ``repeat_near``: that paragraph copied with light edits (a dropped or doubled word, a typo, case, punctuation, bullets,
  a remark added);
- ``repeat_whole``: the whole note's text with the same kind of edits, without its headings.

Negatives are new text, however close in topic:
- ``paraphrase``: the same passage restated in other words (hand-written, tests/data/dedup/written.json);
- ``same_topic``: a passage of another document judged relevant to the same query (SciFact train, Cranfield qrels) or a
  different note on the same subject (written.json);
- ``quote``: a new note that quotes one sentence of the note among four of its own.

Notes are SciFact abstracts and Cranfield documents laid out as markdown notes (an opening, ``## Background``,
``## Findings``), and the developer notes of written.json. Each pair has a ``split`` (tune or test) from its id's hash.
Deterministic: the same inputs give the same file. Usage: ``python bench/dedup_set.py [--out PATH]``."""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
WRITTEN = ROOT / "tests" / "data" / "dedup" / "written.json"
OUT = ROOT / "tests" / "data" / "dedup" / "pairs.jsonl"
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Za-z(])")
REMARKS = ("Worth rereading.", "(from the reading group)", "Keep this in mind for the next review.", "Source: the paper.", "")


def load(name: str) -> dict[str, dict[str, str]]:
    with (DATA / name / "corpus.jsonl").open() as f:
        return {d["_id"]: d for d in map(json.loads, f)}


def sentences(corpus: str, doc: dict[str, str]) -> list[str]:
    """The document's sentences; Cranfield's text opens with its title, which is dropped."""
    parts = [s.strip() for s in SENTENCE.split(doc["text"].strip()) if s.strip()]
    return parts[1:] if corpus == "cranfield" else parts


def note_of(corpus: str, doc: dict[str, str]) -> dict[str, Any]:
    """A markdown note from a document: the passage (two sentences) under Background, the rest under Findings."""
    s = sentences(corpus, doc)
    passage, rest = " ".join(s[:2]), " ".join(s[2:])
    title = doc["title"].strip().rstrip(" .")
    body = f"Reading notes on this paper.\n\n## Background\n\n{passage}\n\n## Findings\n\n{rest}\n"
    return {"title": title[:1].upper() + title[1:], "body": body, "passage": passage, "sentences": s}


def edited(text: str, rng: random.Random) -> str:
    """``text`` copied with light edits: about one word in fifteen dropped, doubled, mistyped or re-cased, then maybe
    bullets per sentence, changed punctuation and a remark."""
    words = text.split()
    out: list[str] = []
    for w in words:
        roll = rng.random()
        if roll < 0.02 and len(out) > 1:
            continue  # dropped
        if roll < 0.04:
            out += [w, w]  # doubled
        elif roll < 0.055 and len(w) >= 5:
            i = rng.randrange(1, len(w) - 2)
            out.append(w[:i] + w[i + 1] + w[i] + w[i + 2:])  # two letters swapped
        elif roll < 0.07:
            out.append(w.lower() if w[:1].isupper() else w.capitalize())
        else:
            out.append(w)
    text = " ".join(out)
    if rng.random() < 0.3:
        text = "\n".join(f"- {s}" for s in SENTENCE.split(text))
    if rng.random() < 0.3:
        text = text.replace(", ", "; ").replace(" .", ".")
    remark = rng.choice(REMARKS)
    return f"{text}\n\n{remark}".strip() if remark else text


def pair(kind: str, source: str, note: dict[str, Any], capture_title: str, capture: str, repeat: bool) -> dict[str, Any]:
    pid = hashlib.sha1(f"{kind}|{source}".encode()).hexdigest()[:12]
    return {"id": pid, "kind": kind, "source": source, "split": "tune" if int(pid, 16) % 2 == 0 else "test", "repeat": repeat,
            "note": {"title": note["title"], "body": note["body"]}, "capture": {"title": capture_title, "body": capture}}


def qrel_groups(corpus: str) -> list[list[str]]:
    """Groups of documents judged relevant to one query, in query order (at least two each)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for path in sorted((DATA / corpus / "qrels").glob("*.tsv")):
        for line in path.read_text().splitlines()[1:]:
            q, d, score = line.split("\t")
            if int(score) > 0 and d not in groups[q]:
                groups[q].append(d)
    return [g for _, g in sorted(groups.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0) if len(g) >= 2]


def build() -> list[dict[str, Any]]:
    written = json.loads(WRITTEN.read_text())
    corpora = {"scifact": load("scifact"), "cranfield": load("cranfield")}
    rng = random.Random(33)
    pairs: list[dict[str, Any]] = []
    used: set[str] = set()

    # the paraphrased passages: each note repeated exactly, repeated nearly, and paraphrased
    for key, paraphrase in written["paraphrases"].items():
        corpus, doc_id = key.split(":")
        note = note_of(corpus, corpora[corpus][doc_id])
        used.add(key)
        pairs.append(pair("repeat_exact", key, note, "From my reading", note["passage"], True))
        pairs.append(pair("repeat_near", key, note, "Copied from the paper", edited(note["passage"], rng), True))
        pairs.append(pair("paraphrase", key, note, "In my own words", paraphrase, False))

    # developer notes: a section repeated exactly and nearly, paraphrased, and a different note on the same topic
    for n in written["notes"]:
        section = n["body"].split(f"## {n['section']}\n\n", 1)[1].split("\n\n", 1)[0]
        note = {"title": n["title"], "body": n["body"]}
        key = f"notes:{n['title']}"
        pairs.append(pair("repeat_exact", key, note, n["section"], section, True))
        pairs.append(pair("repeat_near", key, note, f"{n['section']} (copied)", edited(section, rng), True))
        pairs.append(pair("paraphrase", key, note, f"{n['section']}, in short", n["paraphrase"], False))
        pairs.append(pair("same_topic", key, note, n["same_topic"]["title"], n["same_topic"]["body"], False))

    # another passage judged relevant to the same query: same topic, different text
    for corpus, want in (("scifact", 20), ("cranfield", 20)):
        docs, taken = corpora[corpus], 0
        for group in qrel_groups(corpus):
            a, b = (d for d in group[:2])
            if a not in docs or b not in docs or f"{corpus}:{a}" in used or f"{corpus}:{b}" in used:
                continue
            na, nb = note_of(corpus, docs[a]), note_of(corpus, docs[b])
            if len(na["sentences"]) < 4 or len(nb["sentences"]) < 4:
                continue
            used |= {f"{corpus}:{a}", f"{corpus}:{b}"}
            pairs.append(pair("same_topic", f"{corpus}:{a}+{b}", na, nb["title"], nb["passage"], False))
            taken += 1
            if taken == want:
                break

    # whole notes copied with edits, and new notes that quote one sentence of a note
    for corpus, want in (("scifact", 10), ("cranfield", 10)):
        docs = corpora[corpus]
        ids = sorted(docs)
        random.Random(corpus).shuffle(ids)
        fresh = [i for i in ids if f"{corpus}:{i}" not in used and len(sentences(corpus, docs[i])) >= 5][:want * 3]
        used |= {f"{corpus}:{i}" for i in fresh}
        for k in range(want):
            whole, quoted, other = (note_of(corpus, docs[i]) for i in fresh[3 * k:3 * k + 3])
            text = " ".join(whole["sentences"])
            pairs.append(pair("repeat_whole", f"{corpus}:{fresh[3 * k]}", whole, whole["title"], edited(text, rng), True))
            quote = rng.choice(quoted["sentences"][2:])
            own = other["sentences"][:4]
            mixed = " ".join([*own[:2], f'As one paper puts it: "{quote}"', *own[2:]])
            pairs.append(pair("quote", f"{corpus}:{fresh[3 * k + 1]}<{fresh[3 * k + 2]}", quoted, other["title"], mixed, False))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    pairs = build()
    ids = [p["id"] for p in pairs]
    assert len(ids) == len(set(ids)), "two pairs share an id"
    Path(args.out).write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs))
    kinds: dict[str, int] = defaultdict(int)
    for p in pairs:
        kinds[p["kind"]] += 1
    print(json.dumps({"pairs": len(pairs), "repeats": sum(p["repeat"] for p in pairs), "kinds": dict(kinds),
                      "tune": sum(p["split"] == "tune" for p in pairs)}))


if __name__ == "__main__":
    main()
