"""YAML as notes use it (frontmatter): a safe load without anchors and aliases, of a bounded size.

An alias that repeats a list of aliases ("billion laughs") grows exponentially as it is built; frontmatter never needs
one. Ingest (parsing a note) and the gateway (showing it) read frontmatter with this one loader.
"""

from __future__ import annotations

from typing import Any

import yaml

#: The most frontmatter read as YAML.
MAX_CHARS = 64 * 1024


class _PlainLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted in frontmatter", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def load_plain(text: str) -> Any:
    """``yaml.safe_load`` without aliases; yaml.YAMLError for text over MAX_CHARS, an alias or bad YAML."""
    if len(text) > MAX_CHARS:
        raise yaml.YAMLError(f"frontmatter is {len(text)} characters; at most {MAX_CHARS}")
    return yaml.load(text, Loader=_PlainLoader)
