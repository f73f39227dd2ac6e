"""Hypothesis budgets for the fuzz tests: small, fixed and reproducible in the suite (so CI
never fails on a new random draw), larger and random by hand.

``MUTLS_FUZZ_SCALE=20 .venv/bin/pytest tests/fuzz`` multiplies every budget by 20 and draws new
random examples each run (and keeps failures in ``.hypothesis/``): the way to hunt, not to gate.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SCALE = int(os.environ.get("MUTLS_FUZZ_SCALE", "1"))


def budget(examples: int) -> settings:
    """Settings for ``examples`` examples (times ``MUTLS_FUZZ_SCALE``), no deadline."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        derandomize=SCALE == 1,
        database=None if SCALE == 1 else settings.default.database,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
