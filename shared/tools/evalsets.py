"""The labelled sets of the LLM evals (`eval answers`, `eval enrich`): a JSON list read with a clear error, and the
split of each item: ``tune`` (what prompts and thresholds may be shaped on) or ``test`` (held out: written after
they were frozen, never looked at while tuning)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shared.errors import ConfigError

SPLITS = ("tune", "test")
T = TypeVar("T")


def read_list(path: Path, var: str, what: str) -> list[Any]:
    """The non-empty JSON list in ``path``; a ConfigError naming ``var`` otherwise."""
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(var, f"{path} cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(var, f"{path} is not JSON ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(var, f"{path} must hold a non-empty JSON list of {what}")
    return raw


def split_of(item: dict[str, Any], i: int, path: Path, var: str) -> str:
    """The item's split (tune when it names none)."""
    part = item.get("split", "tune")
    if part not in SPLITS:
        raise ConfigError(var, f"item {i} of {path}: split must be one of {', '.join(SPLITS)}, not {part!r}")
    return str(part)


def in_split(items: list[T], split: str, split_of_item: Callable[[T], str], path: Path, what: str) -> list[T]:
    """The items of ``split`` (tune, test, or all); an error when there are none."""
    chosen = [item for item in items if split in ("all", split_of_item(item))]
    if not chosen:
        raise ConfigError("--split", f"{path} has no {what} in the {split!r} split")
    return chosen
