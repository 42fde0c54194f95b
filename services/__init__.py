"""Tessera's deployable processes: each subpackage runs as `python -m services.<name>`."""
