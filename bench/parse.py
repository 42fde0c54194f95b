"""Every parser step on adversarial 1 MB inputs: seconds per MB, the worst case first.

Steps: ``parse`` (decoding, frontmatter, the first heading), ``blocks`` (the chunker's line walk: headings, fences),
``chunk`` (the whole chunker with the embedding model's real tokenizer) and ``render`` (the gateway's markdown view of a
document). The baseline, in the same run, is the tokenizer alone on the same text: the work no chunker can skip. The
old heading pattern is timed on 500 and 1,000 spaces for contrast (it was cubic: 10,000 took about 25 minutes).

The last line is JSON: ``worst_s_per_mb``, ``worst_case`` ("step: input"), ``baseline_tokenize_s_per_mb`` (its worst),
``steps`` (each step's worst s/MB), ``old_heading_s`` (500 and 1,000 spaces) and ``inputs_mb``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.gateway.render import render_html  # noqa: E402
from services.ingest.chunk import _blocks, chunk_text, default_tokenizer  # noqa: E402
from services.ingest.parse import Budget, ParseError, parse  # noqa: E402

MB = 1_000_000


def inputs(size: int) -> dict[str, str]:
    """Adversarial markdown of about ``size`` characters each."""
    half = size // 2
    return {
        "heading + spaces": "# a" + " " * size + "b\n",
        "heading of spaces": "#" + " " * size + "\n",
        "heading + hashes": "# t" + "#" * size + "x\n",
        "nested emphasis": "*" * half + "a" + "_" * half + "\n",
        "open emphasis runs": "**a " * (size // 4) + "\n",
        "unclosed fence": "```\n" + "a\n" * half,
        "one long line": "word " * (size // 5) + "\n",
        "sentence ends": ". " * half + "\n",
        "closing brackets": "." + ")" * size + " \n",
        "unclosed frontmatter": "---\n" + "a: b\n" * (size // 5),
        "many headings": "#\n" * half,
        "tabs and hashes": "#\t" + "\t#" * half + "\n",
    }


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    try:
        fn()
    except ParseError:
        pass  # a refusal is an answer too (it is timed the same)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=1.0, help="size of each input in MB")
    args = parser.parse_args()
    size = int(args.mb * MB)
    spans = default_tokenizer()
    rows: list[tuple[str, str, float]] = []
    baseline: list[float] = []
    for name, text in inputs(size).items():
        data = text.encode()
        mb = len(data) / MB
        steps: dict[str, Callable[[], object]] = {
            "parse": lambda d=data: parse(d, "x.md", budget=Budget.unlimited()),
            "blocks": lambda t=text: _blocks(t, 0, len(t), True, Budget.unlimited()),
            "chunk": lambda t=text: chunk_text(t, 0, tokenizer=spans, budget=Budget.unlimited()),
            "render": lambda t=text: render_html(t),
        }
        for step, fn in steps.items():
            rows.append((step, name, timed(fn) / mb))
        baseline.append(timed(lambda t=text: spans([t])) / mb)
        worst = max((r for r in rows if r[1] == name), key=lambda r: r[2])
        print(f"{name:<22} worst {worst[0]:<7} {worst[2]:8.3f} s/MB   tokenizer alone {baseline[-1]:8.3f} s/MB", file=sys.stderr)
    old = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)  # as the parser searched a note's body for its title
    old_s = {str(n): round(timed(lambda n=n: old.search("# a" + " " * n + "b\nmore")), 3) for n in (500, 1000)}
    step, case, worst = max(rows, key=lambda r: r[2])
    print(json.dumps({"worst_s_per_mb": round(worst, 3), "worst_case": f"{step}: {case}",
                      "baseline_tokenize_s_per_mb": round(max(baseline), 3),
                      "steps": {s: round(max(r[2] for r in rows if r[0] == s), 3) for s in ("parse", "blocks", "chunk", "render")},
                      "old_heading_s": old_s, "inputs_mb": args.mb}))


if __name__ == "__main__":
    main()
