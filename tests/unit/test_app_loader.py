"""Apps as their frameworks expect to be served: ``--factory``, ``module:create_app()``, and an
app whose own code fails shows its traceback, then one line (exit 2)."""

from __future__ import annotations

import itertools
import logging
import textwrap
from pathlib import Path

import pytest

from mutls import cli
from mutls.apps.loader import import_app
from mutls.errors import AppLoadError, UsageError

from helpers import run_mutls

_names = itertools.count()


def module(tmp_path: Path, source: str) -> str:
    """Write ``source`` as a fresh module in ``tmp_path``; its name (unique per test run)."""
    name = f"loaderapp{next(_names)}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return name


FACTORIES = """
    def create_app(name="default", *, debug=False):
        def app(environ, start_response):
            start_response("200 OK", [])
            return [f"{name}|{debug}".encode()]
        return app

    def app(environ, start_response):
        return []

    def needs_config(config):
        return app

    def returns_nothing():
        return None
"""


def call(app: object) -> bytes:
    return b"".join(app({}, lambda *a: None))  # type: ignore[operator]


def test_factories(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    name = module(tmp_path, FACTORIES)
    assert call(import_app(f"{name}:create_app()", tmp_path)) == b"default|False"
    made = import_app(f"{name}:create_app('prod', debug=True)", tmp_path)
    assert call(made) == b"prod|True"
    assert import_app(f"{name}:app", tmp_path).__name__ == "app"  # an app is not called
    with caplog.at_level(logging.WARNING, logger="mutls.app"):
        assert call(import_app(f"{name}:create_app", tmp_path)) == b"default|False"
    assert "taken as an app factory" in caplog.text and "--factory" in caplog.text


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("create_app(1+1)", "expected module:factory() with literal arguments"),
        ("create_app(**{})", "expected module:factory() with literal arguments"),
        ("returns_nothing()", "returns_nothing() returned NoneType, not a WSGI or ASGI app"),
        ("nope()", "has no attribute 'nope'"),
    ],
)
def test_factory_mistakes_are_one_line(tmp_path: Path, target: str, message: str) -> None:
    name = module(tmp_path, FACTORIES)
    with pytest.raises(UsageError) as raised:
        import_app(f"{name}:{target}", tmp_path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_failing_factory_carries_the_apps_traceback(tmp_path: Path) -> None:
    name = module(tmp_path, FACTORIES)
    with pytest.raises(AppLoadError) as raised:
        import_app(f"{name}:needs_config()", tmp_path)
    assert str(raised.value) == (
        f"{name}:needs_config(): the app factory needs_config() failed: TypeError: "
        "needs_config() missing 1 required positional argument: 'config'"
    )


@pytest.mark.parametrize(
    ("argv", "frames", "line"),
    [
        (["APP:app"], ["in <module>", "in connect", 'raise RuntimeError("no database")'],
         "mutls serve: APP:app: importing APP failed: RuntimeError: no database"),
        (["FACTORY:create_app", "--factory"], ["in create_app", "{}[\"setting\"]"],
         "mutls serve: FACTORY:create_app(): the app factory create_app() failed: KeyError: "
         "'setting'"),
    ],
)  # fmt: skip
def test_the_command_prints_the_traceback_then_one_line(
    tmp_path: Path, argv: list[str], frames: list[str], line: str
) -> None:
    failing = module(
        tmp_path,
        """
        def connect():
            raise RuntimeError("no database")

        connect()
        """,
    )
    factory = module(tmp_path, 'def create_app():\n    return {}["setting"]\n')
    names = {"APP": failing, "FACTORY": factory}
    argv = [a.replace("APP", names["APP"]).replace("FACTORY", names["FACTORY"]) for a in argv]
    line = line.replace("APP", names["APP"]).replace("FACTORY", names["FACTORY"])
    done = run_mutls("serve", *argv, "--app-dir", tmp_path, "--port", "0")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[-1] == line
    for frame in frames:
        assert frame in done.stderr
    assert "importlib" not in done.stderr and "mutls/apps" not in done.stderr


def test_factory_needs_an_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--factory"]) == 2
    assert "--factory needs APP" in capsys.readouterr().err
