"""Fixtures every test layer shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import PKIFiles, make_test_pki
from tools import missing_program, need


class _NeedsMarker:
    """``@pytest.mark.needs("nginx")``: skip (under CI: fail) naming the package, before any
    fixture starts the program (a plugin of its own: conftest's setup hook wraps instead)."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        for mark in item.iter_markers("needs"):
            need(*mark.args)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_NeedsMarker(), "mutls-needs-marker")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """A fixture that cannot start a program: skip (under CI: fail) naming the package."""
    with missing_program():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that cannot start a program it runs: skip (under CI: fail) naming the package."""
    with missing_program():
        return (yield)


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> PKIFiles:
    """One ECDSA test PKI for the whole session (read-only: copy before changing files)."""
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def sandbox_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, XDG_CONFIG_HOME and the machine store moved under ``tmp_path``."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("MUTLS_MACHINE_STORE", str(tmp_path / "machine-store"))
    return home
