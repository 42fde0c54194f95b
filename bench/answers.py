"""The answer eval for each model profile, each in its own isolated mesh (make bench-answers).

    python bench/answers.py [--profiles smollm2-135m,qwen2.5-coder-1.5b] [--file tests/data/answers/questions.json]
                            [--set TESSERA_CHAT_CHECK_FLOOR=0 ...] [--signals signals.jsonl] [--no-research]

Starts a mesh with TESSERA_CHAT_MODEL=<profile>, ingests the golden notes (tests/data/answers/notes) into the
project `golden`, runs `tessera eval answers` at temperature 0 with three sources per question, and stops the
mesh. The tune and the held-out test questions are evaluated apart. The last line is one JSON object: the eval's
figures per profile and split.

``--set`` starts the mesh with a setting changed (the floors, to compare); ``--signals FILE`` writes each question's
grounding signals from the chat log, one JSON line each (split, answerable, cosine, coverage, p_yes: the model check's
probability of yes), which is what the floors are tuned on (the tune split's lines only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from common import ROOT, isolated_settings, tessera

from shared.runtime.config import settings_env


def run_profile(profile: str, args: argparse.Namespace) -> dict[str, object]:
    """The eval's figures on each split, tune and test, from one mesh."""
    extra = dict(item.split("=", 1) for item in args.set)
    if args.signals:  # the chat log says each question's signals at debug level only (the questions are people's words)
        extra.setdefault("TESSERA_LOG_LEVEL", "debug")
    settings = isolated_settings(TESSERA_CHAT_MODEL=profile, TESSERA_CHAT_SLOTS="1", **extra)
    notes = settings.path("imports", "golden")  # inside the mesh's own ingest roots
    shutil.copytree(ROOT / "tests" / "data" / "answers" / "notes", notes)
    print(f"bench-answers: {profile}: starting an isolated mesh in {settings.core.data_dir} …", file=sys.stderr)
    tessera(settings, "up", "--timeout", "600")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")} | settings_env(settings)
        results: dict[str, object] = {}
        for split in ("tune", "test"):
            cmd = [sys.executable, "-m", "shared.cli", "eval", "answers", args.file, "--project", "golden", "--profile", profile,
                   "--split", split, *(["--ingest", str(notes)] if split == "tune" else []), *(["--verbose"] if args.verbose else []),
                   *([] if args.research else ["--no-research"])]
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            print(out.stdout, file=sys.stderr)
            results[split] = ({"failed": (out.stderr or out.stdout)[-500:]} if out.returncode != 0
                              else json.loads(out.stdout.strip().splitlines()[-1]))
        if args.signals:
            write_signals(Path(args.signals), settings.core.data_dir, Path(args.file), profile)
        return results
    finally:
        tessera(settings, "down")


def write_signals(out: Path, data_dir: Path, questions: Path, profile: str) -> None:
    """Each golden question's grounding signals, from the `grounding signals` lines of the mesh's chat log."""
    golden = {q["question"]: q for q in json.loads(questions.read_text())}
    found: dict[str, dict[str, object]] = {}
    for log in sorted(data_dir.rglob("chat*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"grounding signals"' not in line:
                continue
            rec = json.loads(line)
            q = golden.get(rec.get("question", ""))
            if q is not None:
                row = found.setdefault(q["question"], {"profile": profile, "split": q["split"], "answerable": q["answerable"],
                                                       "question": q["question"]})
                row.update({k: rec[k] for k in ("cosine", "coverage", "p_yes") if k in rec})
    with out.open("a") as f:
        for row in found.values():
            f.write(json.dumps(row) + "\n")
    print(f"bench-answers: {profile}: {len(found)} questions' signals appended to {out}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--file", default=str(ROOT / "tests" / "data" / "answers" / "questions.json"))
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a setting of the mesh, e.g. TESSERA_CHAT_CHECK_FLOOR=0")
    parser.add_argument("--signals", default="", metavar="FILE", help="append each question's grounding signals to FILE (JSON lines)")
    parser.add_argument("--no-research", dest="research", action="store_false", help="skip research mode on the multi-hop questions")
    args = parser.parse_args()
    results = {p: run_profile(p, args) for p in args.profiles.split(",")}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
