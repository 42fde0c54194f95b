"""The weekly review on a real import plus a week of synthetic captures, on an isolated mesh.

1. Cranfield (1400 aerodynamics abstracts) is imported, clustered, and made two months old (changed 120 days ago,
   clustered 60 days ago), as if it had been in the library for a while.
2. A week of captures follows, dated over the last seven days: notes that extend the import's topics, a new topic
   (drone propellers) and one capture that repeats an earlier one (dedup refuses it).
3. Searches: the collection's own queries (what was found is not stale), and a few that nothing answers
   (knowledge gaps), plus a question the chat cannot answer from the notes.
4. The map is rebuilt (ids stay where membership overlaps), then `tessera review --project cranfield` prints the
   digest and saves it as a note.

The last line is JSON: documents, captures, duplicates refused, clusters, emerging clusters, stale notes, gaps.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import psycopg
from common import ROOT, ingest, isolated_settings, tessera

from shared.client import Client
from shared.runtime import secrets
from shared.runtime.config import Settings, settings_env
from shared.tools.eval_beir import load_beir, write_corpus

PROJECT = "cranfield"
#: (days ago, title, body): a week of notes by someone working on the same subjects.
WEEK = [
    (7, "Boundary layer transition notes", "Reading on boundary layer transition: roughness elements trip the laminar layer early; "
        "the transition Reynolds number drops sharply with surface roughness height."),
    (6, "Shock wave boundary layer interaction", "Shock wave and boundary layer interaction causes separation at high Mach numbers; "
        "the separation bubble grows with shock strength."),
    (6, "Heat transfer at hypersonic speeds", "Stagnation point heat transfer at hypersonic speed scales with the square root of density; "
        "ablative heat shields for re-entry vehicles."),
    (5, "Drone propeller efficiency", "Drone propeller efficiency falls at low Reynolds number; small quadcopter propellers lose thrust "
        "because the blade boundary layer stays laminar."),
    (5, "Propeller blade pitch for quadcopters", "Quadcopter propeller pitch: a higher pitch propeller gives more speed but needs more "
        "motor torque; drone propeller thrust measured on a test stand."),
    (4, "Drone propeller noise", "Drone propeller noise comes from blade tip vortices; serrated trailing edges reduce quadcopter "
        "propeller noise by a few decibels."),
    (4, "Wing flutter test plan", "Flutter test of the wing model in the wind tunnel: increase dynamic pressure in steps and watch the "
        "damping of the bending-torsion mode."),
    (3, "Propeller slipstream over the wing", "The propeller slipstream raises the dynamic pressure over the wing behind it and delays "
        "stall on a drone with tractor propellers."),
    (3, "Quadcopter propeller materials", "Carbon fibre drone propellers are stiffer than plastic ones, so the blades flex less and "
        "propeller efficiency is higher at full thrust."),
    (2, "Supersonic inlet design", "Supersonic inlet: oblique shocks slow the flow before the normal shock; the inlet pressure recovery "
        "depends on the number of shocks."),
    (2, "Drone propeller efficiency", "Drone propeller efficiency falls at low Reynolds number; small quadcopter propellers lose thrust "
        "because the blade boundary layer stays laminar."),  # a repeat: refused as a duplicate
    (1, "Panel method for the drone wing", "A vortex panel method gives the lift of the drone wing; the propeller effect on the wing is "
        "added as a change of local velocity."),
    (1, "Buckling of thin cylindrical shells", "Thin cylindrical shells under axial compression buckle far below the classical load "
        "because of imperfections; notes from the structures lecture."),
    (0, "Drone propeller ground effect", "Near the ground the drone propeller thrust rises for the same power: ground effect on a "
        "quadcopter hovering below one rotor diameter."),
]
GAPS = ["lunar regolith sintering temperature", "how to bake sourdough bread", "battery cell balancing for quadcopters"]


async def run(settings: Settings, data: Path, queries_n: int) -> dict[str, object]:
    corpus, queries, _ = load_beir(data, "train")
    folder = settings.path("imports", "beir", "cranfield")
    write_corpus(corpus, folder)
    job = await ingest(settings, str(folder), PROJECT)
    print(f"imported {job.counts.files} documents", flush=True)
    async with Client(settings, timeout_s=600) as client:
        await client.map(project=PROJECT, rebuild=True)
        async with await psycopg.AsyncConnection.connect(secrets.database_url(settings), autocommit=True) as conn:
            await conn.execute("UPDATE documents SET created_at = now() - interval '60 days', updated_at = now() - interval '120 days'"
                               " WHERE project = %s", (PROJECT,))
            await conn.execute("UPDATE clusters SET created_at = now() - interval '60 days' WHERE project = %s", (PROJECT,))
            await conn.execute("UPDATE links SET created_at = now() - interval '60 days'")
            duplicates = 0
            for days, title, body in WEEK:
                reply = await client.capture(title, body, project=PROJECT, tags=["notebook"])
                if reply.duplicate:
                    duplicates += 1
                    print(f"refused as a duplicate: {title!r} (similarity {reply.similarity:.3f})", flush=True)
                    continue
                when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days, hours=3)
                await conn.execute("UPDATE documents SET created_at = %s, updated_at = %s WHERE id = %s", (when, when, reply.document_id))
            for _ in range(240):  # the captures' vectors and links
                row = await (await conn.execute("SELECT count(*) FILTER (WHERE NOT embedded) FROM documents WHERE project = %s",
                                                (PROJECT,))).fetchone()
                if row and row[0] == 0:
                    break
                await asyncio.sleep(0.5)
        for text in list(queries.values())[:queries_n]:
            await client.search(text, project=PROJECT)
        for text in GAPS:
            await client.search(text, project=PROJECT)
        answer = await client.ask("What temperature sinters lunar regolith into bricks?", project=PROJECT, max_tokens=64,
                                   purpose="bench")
        finish = answer.done.finish_reason if answer.done else ""
        print(f"chat: {finish}", flush=True)
        mapped = await client.map(project=PROJECT, rebuild=True)
        stale = await client.stale(project=PROJECT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")} | settings_env(settings)
    review = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "shared.cli", "review", "--project", PROJECT], cwd=ROOT,
                                     env=env, capture_output=True, text=True, timeout=300)
    print(review.stdout, flush=True)
    if review.returncode != 0:
        raise SystemExit(f"tessera review failed: {review.stderr[-2000:]}")
    emerging = review.stdout.split("## Emerging clusters", 1)[1].split("##", 1)[0].count("\n- ")
    return {"documents": len(corpus), "captures": len(WEEK) - duplicates, "duplicates_refused": duplicates,
            "clusters": len(mapped.clusters), "merge_suggestions": len(mapped.merges), "emerging_clusters": emerging,
            "stale_notes": stale.total, "gaps_searched": len(GAPS), "chat_finish": finish}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cranfield"))
    parser.add_argument("--queries", type=int, default=60, help="the collection's queries searched during the week")
    args = parser.parse_args()
    settings = isolated_settings(TESSERA_ENRICH="off", TESSERA_REVIEW_SCHEDULE="off")
    tessera(settings, "up", "--timeout", "300")
    try:
        result = asyncio.run(run(settings, Path(args.data), args.queries))
    finally:
        tessera(settings, "down")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
