"""The enrichment eval's scores."""

from __future__ import annotations

from shared.tools.eval_enrich import score, tag_match


def test_enrichment_scores() -> None:
    assert tag_match("postgresql", ["postgres"]) and tag_match("code-review", ["code review"]) and not tag_match("docker", ["kubernetes"])
    rows = [{"type": "bug", "predicted_type": "bug", "tags": ["safari", "cookies"], "predicted_tags": ["cookie"], "state": "enriched"},
            {"type": "insight", "predicted_type": "reference", "tags": ["x"], "predicted_tags": [], "state": "enriched"}]
    s = score(rows)
    assert s["type_accuracy"] == 0.5 and s["tag_overlap"] == 0.25 and s["confusion"]["insight"] == {"reference": 1}
