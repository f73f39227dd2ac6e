"""Static files (``--root``), driven without a socket: what is served, and what never is."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutls.apps import StaticFiles, TestPageApp
from mutls.apps.facts import connection_facts
from mutls.apps.testpage import INSECURE

from helpers import run_app


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("home")
    (root / "sub" / "a.txt").write_text("a")
    for name in ("root.key", "poupou.p12", "old.PFX", "mono.pvk"):
        (root / name).write_text("secret")
    (tmp_path / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    return root


@pytest.mark.parametrize(
    "path",
    [
        "/root.key",
        "/poupou.p12",
        "/old.PFX",
        "/mono.pvk",
        "/../outside.txt",
        "/sub/../../outside.txt",
        "/link.txt",
        "/sub\\..\\..\\outside.txt",
        "/missing",
    ],
)
def test_static_files_never_serve_keys_or_escape_the_root(site: Path, path: str) -> None:
    assert StaticFiles(site).resolve(path) is None


def test_static_files_serve_what_is_inside(site: Path) -> None:
    static = StaticFiles(site)
    assert static.resolve("/sub/a.txt") == (site / "sub" / "a.txt").resolve()
    assert static.resolve("/") == (site / "index.html").resolve()
    app = TestPageApp(static)
    facts = connection_facts(None, None)
    channel = run_app(app, b"GET /sub/a.txt HTTP/1.1\r\nHost: h\r\n\r\n", facts)
    assert channel.status == 200 and channel.body == b"a"
    # the page keeps its paths even with a root
    assert INSECURE.encode() in run_app(app, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", facts).body
    key = run_app(app, b"GET /root.key HTTP/1.1\r\nHost: h\r\n\r\n", facts)
    assert key.status == 404 and b"secret" not in key.body
