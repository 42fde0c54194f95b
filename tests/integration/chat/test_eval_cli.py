"""`tessera eval answers` and `tessera eval enrich` as a user runs them, through the session's mesh (SmolLM2): the per-item
lines, the JSON last line with its keys, the split chosen, and a clear exit for a bad file."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from helpers import ServiceProcess, tessera

from shared.contracts import KINDS, NOT_IN_NOTES
from shared.runtime.config import Settings


def test_eval_answers_asks_the_chosen_split_and_prints_its_figures(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    project = f"eval-{uuid.uuid4().hex[:6]}"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "kiln.md").write_text("---\ntitle: Kiln firing schedule\n---\n# Kiln firing schedule\n\nThe studio kiln fires "
                                   "stoneware to cone 6, which is 1222 degrees Celsius, and bisque to cone 04.\n")
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps([
        {"question": "To what temperature does the studio kiln fire stoneware?", "source": "kiln.md", "facts": ["1222"], "split": "test"},
        {"question": "Who won the football world cup in 2022?", "answerable": False, "split": "test"},
        {"question": "What cone is bisque fired to?", "source": "kiln.md", "facts": ["04"], "split": "tune"},
    ]))
    run = tessera(infra, "eval", "answers", str(questions), "--ingest", str(notes), "--project", project, "--split", "test",
                  "--profile", "smollm2-135m", "--verbose", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["questions"] == 2 and summary["split"] == "test" and summary["profile"] == "smollm2-135m", summary
    assert "cone 04" not in run.stdout and "What cone is bisque" not in run.stdout  # the tune question was not asked
    assert "[answerable] To what temperature" in run.stdout and "[unanswerable] Who won" in run.stdout
    # the unrelated question falls under the relevance floor and gets the fixed reply; the kiln question does not
    assert summary["abstention"] == 1.0 and summary["false_abstention"] == 0.0, run.stdout
    assert summary["relevance"]["answerable_min"] > summary["relevance"]["unanswerable_max"], summary
    assert summary["source_cited"] in (0.0, 1.0) and 0.0 <= summary["fact_recall"] <= 1.0
    assert summary["ttft_ms_p50"] > 0 and summary["tokens_per_s"] > 0 and summary["loops"] == 0, summary
    assert NOT_IN_NOTES[:20] in run.stdout  # --verbose prints each answer

    wrong = tessera(infra, "eval", "answers", str(questions), "--project", project, "--profile", "qwen2.5-coder-1.5b")
    assert wrong.returncode == 2 and "the mesh's chat runs 'smollm2-135m'" in wrong.stdout + wrong.stderr
    missing = tessera(infra, "eval", "answers", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "nope.json cannot be read" in missing.stdout + missing.stderr


def test_eval_enrich_types_and_tags_the_chosen_split(infra: Settings, mesh: dict[str, ServiceProcess], tmp_path: Path) -> None:
    notes = tmp_path / "labelled.json"
    notes.write_text(json.dumps([
        {"title": "Nightly backup fails on full disk", "type": "bug", "tags": ["backup", "disk-space"], "split": "test",
         "text": "The nightly backup job failed with 'No space left on device' because old archives were never deleted. "
                 "Fix: keep seven archives and delete older ones before each run."},
        {"title": "curl with a timeout", "type": "snippet", "tags": ["curl", "shell"], "split": "test",
         "text": "curl --max-time 10 --retry 3 https://example.com/health\n\nFails after ten seconds instead of hanging."},
        {"title": "Use UTC in logs", "type": "decision", "tags": ["logging"], "split": "tune",
         "text": "We decided that every service logs timestamps in UTC."},
    ]))
    run = tessera(infra, "eval", "enrich", "--file", str(notes), "--split", "test", "--verbose", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["notes"] == 2 and summary["split"] == "test" and summary["profile"] == "smollm2-135m", summary
    assert summary["unenriched"] == 0, run.stdout  # the grammar makes even the small model answer in the schema
    predicted = {k for row in summary["confusion"].values() for k in row}
    assert set(summary["confusion"]) == {"bug", "snippet"} and predicted <= set(KINDS), summary
    assert 0.0 <= summary["type_accuracy"] <= 1.0 and 0.0 <= summary["tag_overlap"] <= 1.0
    assert "Nightly backup fails on full disk" in run.stdout and "Use UTC in logs" not in run.stdout

    bad = tessera(infra, "eval", "enrich", "--file", str(notes), "--split", "nope")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
