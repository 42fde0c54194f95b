"""The answer eval for each model profile, each in its own isolated mesh (make bench-answers).

    python bench/answers.py [--profiles smollm2-135m,qwen2.5-coder-1.5b] [--file tests/data/answers/questions.json]

Starts a mesh with TESSERA_CHAT_MODEL=<profile>, ingests the golden notes (tests/data/answers/notes) into the
project `golden`, runs `tessera eval answers` at temperature 0 with three sources per question, and stops the
mesh. The tune and the held-out test questions are evaluated apart. The last line is one JSON object: the eval's
figures per profile and split.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

from common import ROOT, isolated_settings, tessera

from shared.runtime.config import settings_env


def run_profile(profile: str, args: argparse.Namespace) -> dict[str, object]:
    """The eval's figures on each split, tune and test, from one mesh."""
    settings = isolated_settings(TESSERA_CHAT_MODEL=profile, TESSERA_CHAT_SLOTS="1")
    notes = settings.path("imports", "golden")  # inside the mesh's own ingest roots
    shutil.copytree(ROOT / "tests" / "data" / "answers" / "notes", notes)
    print(f"bench-answers: {profile}: starting an isolated mesh in {settings.data_dir} …", file=sys.stderr)
    tessera(settings, "up", "--timeout", "600")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")} | settings_env(settings)
        results: dict[str, object] = {}
        for split in ("tune", "test"):
            cmd = [sys.executable, "-m", "shared.cli", "eval", "answers", args.file, "--project", "golden", "--profile", profile,
                   "--split", split, *(["--ingest", str(notes)] if split == "tune" else []), *(["--verbose"] if args.verbose else [])]
            out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
            print(out.stdout, file=sys.stderr)
            results[split] = ({"failed": (out.stderr or out.stdout)[-500:]} if out.returncode != 0
                              else json.loads(out.stdout.strip().splitlines()[-1]))
        return results
    finally:
        tessera(settings, "down")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profiles", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--file", default=str(ROOT / "tests" / "data" / "answers" / "questions.json"))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    results = {p: run_profile(p, args) for p in args.profiles.split(",")}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
