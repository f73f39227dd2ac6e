"""Fuzz tests reuse the record helpers of tests/conformance (the byte-level TLS driver is
tests/tls_driver.py, on the path of every test)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "conformance"))
