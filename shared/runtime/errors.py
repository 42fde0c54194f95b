"""The error taxonomy of the shared runtime.

    TesseraError
    ├── ConfigError          a setting is missing, malformed or unusable
    ├── DependencyError      Postgres, NATS or Redis cannot be reached
    ├── DiscoveryError       no instance of a service could be found
    └── InfraError           an embedded server failed to start or stop

Messages start with the component name ("config: ...", "db: ...") and are one
line, so that a process can print ``str(err)`` and exit.
"""

from __future__ import annotations


class TesseraError(Exception):
    """Base of every error raised by Tessera's shared runtime."""


class ConfigError(TesseraError, ValueError):
    """A setting has a value that cannot be used; the message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"config: {setting}: {message}")


class DependencyError(TesseraError, ConnectionError):
    """A required dependency (Postgres, NATS) is unreachable."""


class DiscoveryError(TesseraError, LookupError):
    """No address is known for a service."""


class InfraError(TesseraError, RuntimeError):
    """An embedded infrastructure server failed."""
