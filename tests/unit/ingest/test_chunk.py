from __future__ import annotations

import itertools
import random

from services.ingest.chunk import ChunkConfig, chunk_text

DOC = """# Tidal gauges

Intro paragraph about the gauges. It has two sentences.

## Calibration

The gauges drift by about 2 mm per month. We recalibrate them every spring using a reference benchmark.
The benchmark is a brass plate bolted to the pier. Readings are logged hourly and sent to the harbour office.

```python
def drift(mm):

    return mm * 2
```

## Maintenance

Replace batteries yearly.
"""


def test_chunks_are_exact_spans_with_lines_and_headings() -> None:
    chunks = chunk_text(DOC, config=ChunkConfig(max_tokens=40))
    lines = DOC.splitlines()
    for c in chunks:
        assert DOC[c.char_start:c.char_end] == c.text
        assert c.tokens <= 40
        assert lines[c.line_start - 1].strip() and c.text.splitlines()[0] in lines[c.line_start - 1]
        assert c.text.splitlines()[-1] in lines[c.line_end - 1]
    assert chunks[0].heading_path == ("Tidal gauges",)
    assert all(c.heading_path == ("Tidal gauges", "Calibration") for c in chunks if "brass" in c.text)
    code = [c for c in chunks if "def drift" in c.text]
    assert len(code) == 1 and "return mm * 2" in code[0].text, "a fenced block (with a blank line inside) stays whole"
    assert chunks[-1].heading_path == ("Tidal gauges", "Maintenance")


def test_chunks_never_cross_sections_and_respect_the_limit_on_random_text() -> None:
    rng = random.Random(3)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda"]
    parts = []
    for s in range(6):
        parts.append(f"## Section {s}\n")
        for _ in range(rng.randint(1, 5)):
            parts.append(" ".join(". ".join(" ".join(rng.choices(words, k=rng.randint(3, 40))) for _ in range(3)).split()) + ".\n")
    doc = "\n".join(parts)
    chunks = chunk_text(doc, config=ChunkConfig(max_tokens=64, overlap=0.25))
    assert all(c.tokens <= 64 and doc[c.char_start:c.char_end] == c.text for c in chunks)
    for c in chunks:
        assert c.text.count("## Section") <= 1
    covered = set()
    for c in chunks:
        covered.update(range(c.char_start, c.char_end))
    assert all(i in covered for i, ch in enumerate(doc) if not ch.isspace()), "no text may be lost"


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))
    chunks = chunk_text(text, markdown=False, config=ChunkConfig(max_tokens=50, overlap=0.3))
    assert len(chunks) > 3
    assert all(b.char_start < a.char_end for a, b in itertools.pairwise(chunks)), "consecutive chunks overlap"


def test_a_giant_sentence_is_cut_at_token_boundaries() -> None:
    text = "word " * 1000
    chunks = chunk_text(text, markdown=False, config=ChunkConfig(max_tokens=100))
    assert len(chunks) == 10 and all(c.tokens <= 100 for c in chunks)
    assert "".join(c.text.replace(" ", "") for c in chunks) == "word" * 1000
