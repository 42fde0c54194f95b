"""The web page's server-side markdown: blocks keep their file line numbers, frontmatter is split off, raw HTML is text."""

from __future__ import annotations

from services.gateway.render import markdown_blocks, render_html, split_frontmatter
from shared.runtime.analyzer import highlights

NOTE = """---
title: Kettle
tags: [kitchen, home]
---
# Kettle descaling

Fill it with vinegar
and water.

- boil
- rinse

```sh
echo <b>
```
"""


def test_blocks_carry_their_file_lines() -> None:
    lines = NOTE.splitlines()
    meta, raw, skip = split_frontmatter(lines)
    assert meta == {"title": "Kettle", "tags": ["kitchen", "home"]} and skip == 4 and raw.startswith("title:")
    blocks = markdown_blocks(lines[skip:], 1 + skip)
    assert [(b.start, b.end) for b in blocks] == [(5, 5), (7, 8), (10, 11), (13, 15)]
    assert blocks[0].html.startswith("<h1>") and "<li>boil</li>" in blocks[2].html
    assert "&lt;b&gt;" in blocks[3].html  # code is escaped


def test_no_frontmatter_or_an_unclosed_one() -> None:
    assert split_frontmatter(["# Title", "text"]) == (None, "", 0)
    assert split_frontmatter(["---", "title: x", "no end"]) == (None, "", 0)
    assert split_frontmatter(["---", ": : bad yaml [", "---"])[0] == {}


def test_raw_html_and_script_links_are_never_live() -> None:
    out = render_html('<script>alert(1)</script>\n\n[x](javascript:alert(1)) <img src=x onerror=alert(1)>')
    assert "<script" not in out and "<img" not in out and 'href="javascript' not in out


def test_highlights_match_words_by_their_stem() -> None:
    text = "Descaling kettles: the kettle is descaled with vinegar"
    spans = highlights(text, "how to descale a kettle")
    assert [text[a:b] for a, b in spans] == ["Descaling", "kettles", "kettle", "descaled"]
    assert highlights(text, "the of and") == []
