"""The weekly review, rendered: a pure function of what store.review_data read (new notes by cluster, new links,
emerging clusters, stale notes, near-duplicates, knowledge gaps) to markdown. No I/O."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

#: Links at least this similar are near-duplicates worth merging.
NEAR_DUPLICATE = 0.92
#: How many rows of each section the review lists.
REVIEW_ROWS = 10

Rows = list[dict[str, Any]]


@dataclass
class ReviewData:
    """What the review reads for one window (store.review_data)."""

    new: Rows = field(default_factory=list)
    links: Rows = field(default_factory=list)
    clusters: Rows = field(default_factory=list)  # every cluster with its size and its notes from the window
    stale_clusters: Rows = field(default_factory=list)
    stale_notes: Rows = field(default_factory=list)
    stale_total: int = 0
    duplicates: Rows = field(default_factory=list)
    gaps: Rows = field(default_factory=list)
    closest: Rows = field(default_factory=list)


#: The longest title, query or cluster name the review quotes (a note's title can be any length: one of 100,000
#: characters made the review 117 kB, past what the page renders).
LABEL_CHARS = 120
_TEXT_FIELDS = ("title", "a", "b", "query", "name", "cluster")


def label(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` on one line, whitespace collapsed, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def clipped(rows: Rows) -> Rows:
    """The rows with their quoted texts cut to a label."""
    return [{k: label(v) if k in _TEXT_FIELDS and isinstance(v, str) else v for k, v in r.items()} for r in rows]


def render_review(d: ReviewData, since: dt.datetime, now: dt.datetime, project: str, stale_days: int) -> tuple[str, str]:
    """(markdown, title) of the review of the window from ``since`` to ``now``."""
    rows: dict[str, Any] = {f.name: clipped(getattr(d, f.name)) for f in fields(d) if isinstance(getattr(d, f.name), list)}
    d = replace(d, **rows)
    title = f"Weekly review {since:%Y-%m-%d} to {now:%Y-%m-%d}" + (f" ({project})" if project else "")
    grown = emerging(d.clusters)[:REVIEW_ROWS]
    md = [f"# {title}", "",
          f"{count(len(d.new), 'new note')}, {count(len(d.links), 'new link')}, {count(len(grown), 'emerging cluster')}, "
          f"{count(d.stale_total, 'stale note')}, {count(len(d.gaps), 'knowledge gap')}."]
    md += ["", "## New notes by cluster", "", *new_notes(d.new)]
    md += ["## New links", ""]
    md += [f"- {r['a']} ↔ {r['b']} ({r['score']:.2f})" for r in d.links] or ["No new links."]
    md += ["", "## Emerging clusters", ""]
    md += [emerging_line(r, len(d.new)) for r in grown] or ["None."]
    md += ["", "## Stale", ""]
    md += [f"- cluster **{r['name']}**: {r['stale']} of {r['size']} notes stale" for r in d.stale_clusters]
    md += [f"- {r['title']} `{Path(r['path']).name}`: unchanged since {r['updated_at']:%Y-%m-%d} and not found in a search since"
           for r in d.stale_notes]
    if not d.stale_clusters and not d.stale_notes:
        md.append(f"Nothing has gone {stale_days} days without a change or a search hit.")
    md += ["", "## Near-duplicates to merge", ""]
    md += [f"- {r['a']} `{Path(r['a_path']).name}` and {r['b']} `{Path(r['b_path']).name}` ({r['score']:.2f})" for r in d.duplicates] or ["None."]
    md += ["", "## Knowledge gaps", ""]
    md += [gap_line(r) for r in d.gaps] or ["Every search found something."]
    md += ["", "## Questions to explore", ""]
    md += [f"{i}. {q}" for i, q in enumerate(questions(d.gaps, grown, d.links, d.closest), start=1)]
    return "\n".join(md).rstrip() + "\n", title


def new_notes(new: Rows) -> list[str]:
    """The window's new notes grouped by cluster, at most REVIEW_ROWS per cluster."""
    if not new:
        return ["No new notes."]
    groups: dict[str, Rows] = defaultdict(list)
    for r in new:
        groups[r["cluster"] or "Not clustered yet"].append(r)
    md: list[str] = []
    for name, rows in groups.items():
        md.append(f"### {name} ({len(rows)})")
        md += [f"- {r['title']}" + (f" ({r['kind']})" if r["kind"] else "") + f" `{Path(r['path']).name}`" for r in rows[:REVIEW_ROWS]]
        if len(rows) > REVIEW_ROWS:
            md.append(f"- … and {len(rows) - REVIEW_ROWS} more")
        md.append("")
    return md


def emerging_line(r: dict[str, Any], window_notes: int) -> str:
    if r["fresh"] * 2 >= r["size"]:
        return f"- **{r['name']}**: new, {r['fresh']} of its {r['size']} notes are from this window"
    return (f"- **{r['name']}**: +{r['fresh']} notes ({100 * r['fresh'] / (r['size'] - r['fresh']):.0f}% growth, "
            f"{100 * r['fresh'] / max(1, window_notes):.0f}% of the window's notes), {r['size']} in all")


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def emerging(clusters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Clusters with at least two notes from the window that are mostly new, grew by 15 % or more, or drew a share of the
    window's notes three times their share of the library; most new notes first."""
    total = sum(int(c["size"]) for c in clusters) or 1
    fresh_total = sum(int(c["fresh"]) for c in clusters) or 1
    out = []
    for c in clusters:
        fresh, size = int(c["fresh"]), int(c["size"])
        prior = size - fresh
        if fresh >= 2 and (fresh * 2 >= size or fresh * 20 >= prior * 3 or (fresh >= 3 and fresh / fresh_total >= 3 * size / total)):
            out.append(c)
    return sorted(out, key=lambda c: (-int(c["fresh"]), -int(c["size"])))


def gap_line(r: dict[str, Any]) -> str:
    best = f"best match {float(r['best']):.2f}" if r["best"] else "no good match"
    return f"- \"{r['query']}\": {'asked' if r['asked'] else 'searched'} {r['times']}×, {best}"


def questions(gaps: list[dict[str, Any]], grown: list[dict[str, Any]], links: list[dict[str, Any]],
              closest: list[dict[str, Any]]) -> list[str]:
    """Three questions from what the week showed: a gap, an emerging cluster, a connection."""
    out: list[str] = []
    for g in gaps[:1]:
        out.append(f"What should a note on \"{g['query']}\" say? Your notes had no good answer.")
    for c in grown[:1]:
        out.append(f"What is driving the new notes on {c['name']}, and what do they have in common?")
    for link in links[:1]:
        out.append(f"How does \"{link['a']}\" relate to \"{link['b']}\"?")
    for c in closest[:1]:
        if len(out) < 3:
            out.append(f"What connects {c['a']} and {c['b']}? Their clusters are close ({float(c['sim']):.2f}).")
    for g in gaps[1:]:
        if len(out) < 3:
            out.append(f"What is known about \"{g['query']}\"?")
    fallback = ["Which note from this week would you explain to someone else first, and what is missing from it?",
                "Which old note does this week's work change?", "What did you decide this week that no note records yet?"]
    return (out + fallback)[:3]
