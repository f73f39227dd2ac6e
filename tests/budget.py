"""Hypothesis budgets: small, fixed and reproducible in the suite (so CI never fails on a new
random draw), larger and random by hand.

``MUTLS_FUZZ_SCALE=20 .venv/bin/pytest tests/fuzz`` multiplies every fuzz budget by 20 and draws
new random examples each run (and keeps failures in ``.hypothesis/``): the way to hunt, not to
gate. The differential tests (tests/conformance/test_differential.py) scale the same way with
``MUTLS_DIFF_SCALE``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = int(os.environ.get("MUTLS_FUZZ_SCALE", "1"))


def budget(examples: int, scale: int = SCALE) -> settings:
    """Settings for ``examples`` examples (times ``scale``), no deadline; derandomized unless
    scaled up."""
    return settings(
        max_examples=examples * scale,
        deadline=None,
        derandomize=scale == 1,
        database=None if scale == 1 else settings.default.database,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
