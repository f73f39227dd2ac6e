"""Fixtures of the conformance tests: the extra never-valid certificates (new files only)."""

from __future__ import annotations

import sys

import pytest
from weak_pki import WeakPKI, make_weak_pki

from helpers import PASSWORD, PKIFiles


@pytest.fixture(scope="session")
def weak_pki(test_pki: PKIFiles) -> WeakPKI:
    """:data:`weak_pki.WEAK_CASES`, written as PEM/key/P12 beside ``test_pki``'s files."""
    weak = make_weak_pki(test_pki)
    for name, identity in weak.identities.items():
        identity.write_pem(test_pki.cert(name), test_pki.key(name), overwrite=True)
        identity.write_p12(test_pki.p12(name), PASSWORD, overwrite=True)
    return weak


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The differential tests' tally: cases, intentional differences, disagreements."""
    differential = sys.modules.get("differential")
    if differential is None or not differential.TALLY.cases:
        return
    terminalreporter.write_sep("-", "differential testing (tests/conformance/test_differential.py)")
    for line in differential.TALLY.lines():
        terminalreporter.write_line(line)
