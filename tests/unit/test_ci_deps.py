"""``.ci/deps`` (run by ``make test`` and ``.ci/run``): install the missing packages of
``.ci/packages`` as root, name them otherwise, and fail only under CI.

``dpkg-query``, ``id`` and ``apt-get`` are stand-ins on PATH, so the script is tried as root and
as a user on a machine that lacks wget, without touching this machine's packages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tools import ROOT, listed_packages

MISSING = "wget"


def run_deps(tmp_path: Path, *, uid: int, ci: bool = False) -> tuple[int, str, str]:
    """(exit status, output, what apt-get was asked) with only MISSING not installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    asked = tmp_path / "apt-get.args"
    stubs = {
        "dpkg-query": f'for a; do last=$a; done; [ "$last" = {MISSING} ] && exit 1\n'
        'echo "install ok installed"',
        "id": f"echo {uid}",
        "apt-get": f'echo "$@" >> {asked}',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MUTLS_NO_APT")}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    if ci:
        env["CI"] = "true"
    done = subprocess.run(
        ["bash", str(ROOT / ".ci" / "deps")],
        env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr, asked.read_text() if asked.exists() else ""


def test_as_a_user_it_names_the_missing_package_and_goes_on(tmp_path: Path) -> None:
    code, out, asked = run_deps(tmp_path, uid=1000)
    assert code == 0 and asked == ""
    assert f"still missing: {MISSING}\n" in out
    assert f"(as root: apt-get install {MISSING}); the tests that need them are skipped" in out


def test_as_root_it_installs_exactly_what_is_missing(tmp_path: Path) -> None:
    code, out, asked = run_deps(tmp_path, uid=0)
    assert code == 0 and f"installing the Debian packages the tests use: {MISSING}" in out
    assert asked.splitlines() == ["update -qq", f"install -y -qq --no-install-recommends {MISSING}"]


@pytest.mark.parametrize("uid", [0, 1000])
def test_under_ci_a_package_that_is_still_missing_fails(tmp_path: Path, uid: int) -> None:
    # as root, the stand-in apt-get "succeeds" and installs nothing: a broken install step
    code, out, _ = run_deps(tmp_path, uid=uid, ci=True)
    assert code == 1 and f"still missing: {MISSING}" in out and "CI=true" in out


def test_the_one_list_holds_what_the_tests_name(tmp_path: Path) -> None:
    from tools import PACKAGE_OF

    extras = {"mono-devel"}  # deliberately left out (200 MiB for one store test)
    assert set(PACKAGE_OF.values()) - extras <= listed_packages()
    assert "make ci-deps" not in (ROOT / ".ci" / "packages").read_text()
