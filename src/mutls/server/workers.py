"""``--workers N``: a supervisor that binds once, builds the TLS context once, and forks."""

from __future__ import annotations

from mutls.errors import UsageError
from mutls.server.config import ServerConfig


def run_workers(config: ServerConfig) -> int:
    """Serve with ``config.workers`` processes."""
    raise UsageError("--workers above 1 is not available yet")
