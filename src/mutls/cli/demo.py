"""``mutls demo``: the article's whole scenario, end to end."""

from __future__ import annotations

from collections.abc import Sequence

from mutls.errors import MutlsError

HELP = "play the article end to end and print the four outcomes"


def main(argv: Sequence[str]) -> int:
    """Not yet: the server lands with the TLS engine."""
    raise MutlsError("the demo needs the server, which is not built yet")
