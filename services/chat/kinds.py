"""What a note's form says about its type, before any model reads it. No I/O.

Two of the five types are defined by form (the enrichment prompt says so): a *snippet* is mainly code, a command or a
query; a *decision* states a choice that was made. A small model often files a shell one-liner as a decision or a
dated decision as a reference. So the form decides where it is plain: at least half of the note's lines are code (in
a fenced block, or starting the way commands, queries and source lines do), or the note says in so many words that a
choice was made. Otherwise the model's type stands. Tuned on the tune half of tests/data/enrich/notes.json only."""

from __future__ import annotations

import re

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_LINE = re.compile(
    r"^\s*(\$ |# |sudo |git |kubectl |docker |pip |npm |pnpm |yarn |curl |ssh |awk |sed |grep |find |du |ls |cd |jq |ffmpeg |"
    r"terraform |redis-cli |psql |python3? |SELECT |INSERT |UPDATE |DELETE |CREATE |WITH |import |from \S+ import |def |class |"
    r"async def |return |const |let |function |#!|@\w+)")
DEFECT = re.compile(r"\b(bugs?|fix(ed|es)?|root cause|cause|workaround|crash(ed|es)?|errors?|failed|fails|deadlock|leak|outage|"
                    r"broke|broken|stalled|missing|wrong|twice)\b", re.IGNORECASE)
DECISION = re.compile(r"\b(?:decided\b|decision:|decision for\b|we chose\b|we agreed\b|team agreed\b|agreed (?:to|that|in|by|on)\b|"
                      r"chosen over\b|status: accepted\b)", re.IGNORECASE)


def code_share(text: str) -> float:
    """The share of the note's non-empty lines that are code: inside a fenced block (fences included) or code-like."""
    lines = [line for line in text.splitlines() if line.strip()]
    inside, code = False, 0
    for line in lines:
        if FENCE.match(line):
            inside = not inside
            code += 1
        elif inside or CODE_LINE.match(line):
            code += 1
    return code / len(lines) if lines else 0.0


def kind_by_form(text: str) -> str:
    """'snippet' for a note that is mostly code, 'decision' for one that says a choice was made, else ''."""
    if code_share(text) >= 0.5:
        return "snippet"
    if DECISION.search(text):
        return "decision"
    return ""


def settle(model_kind: str, text: str) -> str:
    """The type to keep: the form's where it speaks. A 'decision' the note never states is the small model's favourite
    mistake: it is a bug when the note tells of a defect and its cause or fix, else an insight (the prompt's otherwise)."""
    if form := kind_by_form(text):
        return form
    if model_kind == "decision":
        return "bug" if DEFECT.search(text) else "insight"
    return model_kind
