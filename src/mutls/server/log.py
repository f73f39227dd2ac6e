"""Server logs: one line per event, with attacker-chosen text made harmless.

A certificate's subject, a request path or a header is chosen by the client; printed raw, a
newline or an ANSI escape in it could forge log lines or rewrite a terminal. :func:`printable`
escapes every control character.
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("mutls.server")
access_log = logging.getLogger("mutls.access")

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"}
_ESCAPES |= {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}  # C1 controls (CSI 0x9B...)


def printable(text: object) -> str:
    """``text`` with control characters (C0, DEL, C1) and backslashes escaped."""
    return str(text).translate(_ESCAPES)


def configure_logging(verbose: bool) -> None:
    """Log to stderr: warnings always, each request too with ``verbose``."""
    root = logging.getLogger("mutls")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    access_log.setLevel(logging.INFO if verbose else logging.WARNING)
