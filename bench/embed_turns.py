"""A note captured right after a large document: how long until it is embedded (searchable by meaning), with the
document embedded whole first (the old worker: TESSERA_EMBED_TURN_CHUNKS larger than the document) and with turns
of the default size, each on an isolated mesh.

The last line is JSON: ``chunks`` (the document's), ``note_s_whole`` and ``note_s_turns`` (seconds from the note's
ingest until it was embedded), ``note_speedup`` (whole / turns), ``document_s_whole`` and ``document_s_turns``
(seconds until the document was embedded, counted from the same moment) and ``document_ratio`` (turns / whole).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import isolated_settings, tessera

from shared.client import Client
from shared.runtime.config import EmbedSettings, Settings


def write_inputs(settings: Settings, sections: int) -> tuple[Path, Path]:
    manual = settings.path("imports", "manual")
    manual.mkdir(parents=True, exist_ok=True)
    body = "\n\n".join(f"## Step {i}\n\n" + f"Step {i} of the turbine maintenance manual checks bolt torque and blade wear. " * 10
                       for i in range(sections))
    (manual / "manual.md").write_text(f"# Turbine manual\n\n{body}\n")
    note = settings.path("imports", "note")
    note.mkdir(parents=True, exist_ok=True)
    (note / "kettle.md").write_text("# Kettle\n\nDescale the kettle with vinegar once a month.\n")
    return manual, note


async def one_side(settings: Settings, manual: Path, note: Path) -> dict[str, float]:
    async with Client(settings) as client:
        started = await client.ingest_path(manual, project="manual")
        while True:  # stored and queued: from here the embed worker has it
            counts = (await client.job(started.job_id, include_files=False)).counts
            if counts.chunked + counts.embedded + counts.failed >= 1:
                break
            await asyncio.sleep(0.02)
        t0 = time.monotonic()
        await client.ingest(note, project="note")
        note_s = time.monotonic() - t0
        async for job in client.watch_job(started.job_id, include_files=False):
            chunks = job.counts.chunks
        return {"note_s": round(note_s, 2), "document_s": round(time.monotonic() - t0, 2), "chunks": chunks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", type=int, default=3000, help="sections of the large document (about one chunk each)")
    args = parser.parse_args()
    default = EmbedSettings().turn_chunks
    sides = {"whole": 10_000_000, "turns": default}
    out: dict[str, dict[str, float]] = {}
    for name, turn in sides.items():
        settings = isolated_settings(TESSERA_EMBED_TURN_CHUNKS=str(turn), TESSERA_ENRICH="off", TESSERA_REVIEW_SCHEDULE="off",
                                     TESSERA_INGEST_MAX_BYTES=str(64 << 20))
        manual, note = write_inputs(settings, args.sections)
        tessera(settings, "up", "--timeout", "300")
        try:
            out[name] = asyncio.run(one_side(settings, manual, note))
        finally:
            tessera(settings, "down")
        print(json.dumps({name: out[name], "turn_chunks": turn}), flush=True)
    whole, turns = out["whole"], out["turns"]
    print(json.dumps({"chunks": turns["chunks"], "turn_chunks": default, "note_s_whole": whole["note_s"], "note_s_turns": turns["note_s"],
                      "note_speedup": round(whole["note_s"] / max(turns["note_s"], 1e-3), 1),
                      "document_s_whole": whole["document_s"], "document_s_turns": turns["document_s"],
                      "document_ratio": round(turns["document_s"] / max(whole["document_s"], 1e-3), 2)}))


if __name__ == "__main__":
    main()
