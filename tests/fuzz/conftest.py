"""Fuzz tests reuse the byte-level TLS driver (tests/unit) and the record helpers
(tests/conformance)."""

from __future__ import annotations

import sys
from pathlib import Path

here = Path(__file__).parent
for folder in ("unit", "conformance"):
    sys.path.insert(0, str(here.parent / folder))
