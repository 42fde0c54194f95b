"""The `tessera` command line."""

from shared.cli.main import main

__all__ = ["main"]
