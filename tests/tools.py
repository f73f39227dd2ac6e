"""The programs the tests drive, the Debian package of each, and what a missing one means.

A test that runs a program says so, with ``need("wget")`` or the ``needs("nginx")`` marker; a
test (or fixture) that runs one directly and finds it missing (``FileNotFoundError`` naming it)
is treated the same way (:func:`missing_program`, from conftest). A missing program skips the
test, naming the package to install, so the suite passes on a machine that has only Python.
Under CI (``CI=true``), where ``.ci/run`` installed ``.ci/packages`` first, a missing program of
that list fails the test instead: a broken install step must not hide behind skips. A program
whose package is deliberately left out of the list (Mono's ``certmgr``, 200 MiB of ``mono-
devel``) skips everywhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_LIST = ROOT / ".ci" / "packages"

#: program (or header file) -> the Debian package that brings it.
PACKAGE_OF = {
    "openssl": "openssl",
    "curl": "curl",
    "wget": "wget",
    "certutil": "libnss3-tools",
    "pk12util": "libnss3-tools",
    "update-ca-certificates": "ca-certificates",
    "nginx": "nginx-light",
    "keytool": "default-jre-headless",
    "java": "default-jre-headless",
    "javac": "default-jdk-headless",
    "gcc": "gcc",
    "/usr/include/openssl/ssl.h": "libssl-dev",
    "chromium": "chromium",
    "h2load": "nghttp2-client",
    "firefox-esr": "firefox-esr",
    "mcs": "mono-mcs",
    "mono": "mono-mcs",
    "certmgr": "mono-devel",
    "haproxy": "haproxy",
    "systemd-socket-activate": "systemd",
}


@cache
def listed_packages() -> frozenset[str]:
    """The packages of ``.ci/packages`` (comments and blank lines aside)."""
    lines = PACKAGE_LIST.read_text().splitlines()
    return frozenset(w for line in lines if (w := line.split("#", 1)[0].strip()))


def under_ci() -> bool:
    """``CI=true``: the packages were installed, so a missing one is a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def found(program: str) -> str | None:
    """The program's path (a header file's, for ``/usr/include/…``), or ``None``."""
    if program.startswith("/"):
        return program if Path(program).exists() else None
    return shutil.which(program)


def need(*programs: str) -> None:
    """Skip the calling test (or fail it under CI) unless every program is installed."""
    missing = [p for p in programs if found(p) is None]
    if missing:
        _missing(missing)


@contextlib.contextmanager
def missing_program() -> Iterator[None]:
    """Skip (under CI: fail) when the body raises ``FileNotFoundError`` for a known program
    that could not be started; any other error goes on."""
    try:
        yield
    except FileNotFoundError as exc:
        name = Path(str(exc.filename or "")).name
        if name in PACKAGE_OF and found(name) is None:
            _missing([name])
        raise


def _missing(missing: list[str]) -> NoReturn:
    packages = sorted({PACKAGE_OF[p] for p in missing})
    why = f"{', '.join(missing)} not installed (Debian: apt-get install {' '.join(packages)})"
    if under_ci() and all(p in listed_packages() for p in packages):
        pytest.fail(f"{why}, although .ci/packages lists it and CI installed that list")
    pytest.skip(why)
