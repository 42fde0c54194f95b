"""Enrichment quality per chat model profile: `tessera eval enrich` (type accuracy and tag overlap on the labelled
notes in tests/data/enrich/notes.json) against an isolated mesh running each profile, one slot using every core.

The last line is JSON: per profile and split (tune, and the held-out test notes), ``type_accuracy``, ``tag_overlap``,
``tag_jaccard``, ``unenriched``, ``notes`` and ``seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import isolated_settings, tessera

from shared.tools.eval_enrich import DEFAULT, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--file", default=str(DEFAULT))
    args = parser.parse_args()
    out: dict[str, dict[str, dict[str, object]]] = {}
    for profile in args.profiles.split(","):
        settings = isolated_settings(TESSERA_CHAT_MODEL=profile, TESSERA_CHAT_SLOTS="1", TESSERA_ENRICH="off", TESSERA_REVIEW_SCHEDULE="off")
        tessera(settings, "up", "--timeout", "600")
        out[profile] = {}
        try:
            for split in ("tune", "test"):
                result = asyncio.run(evaluate(settings, Path(args.file), verbose=True, split=split))
                print(json.dumps({profile: result}), flush=True)
                out[profile][split] = {k: result[k] for k in ("type_accuracy", "tag_overlap", "tag_jaccard", "unenriched", "notes", "seconds")}
        finally:
            tessera(settings, "down")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
