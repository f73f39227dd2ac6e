"""Fixtures of the browser tests (tests/interop/test_browsers.py, test_browser_websocket.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from browsers import sandbox_env
from helpers import PASSWORD, PKIFiles, run_mutls

#: the sandboxed HOMEs: which client P12s each one's NSS databases hold.
HOMES = {
    "poupou": ["poupou"],  # the article's user, issued by the trusted CA
    "mallory": ["untrusted"],  # CN=mallory, issued by another CA
    "expired": ["expired"],  # CN=expired, issued by the trusted CA, expired yesterday
}


@pytest.fixture(scope="module")
def homes(test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HOMEs whose Chromium and Firefox NSS databases were filled by mutls certmgr alone."""
    made = {}
    for name, identities in HOMES.items():
        home = tmp_path_factory.mktemp(f"home-{name}")
        # A Firefox profile as Firefox leaves it; certmgr finds it the way it finds a user's.
        profile = home / ".mozilla" / "firefox" / "mutls.default"
        profile.mkdir(parents=True)
        subprocess.run(
            ["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True, timeout=60
        )
        env = sandbox_env(home)
        result = run_mutls("certmgr", "--install-root", test_pki.ca_cert, "--nss", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(": installed") == 2, result.stdout  # Chromium's and Firefox's
        for identity in identities:
            p12 = test_pki.p12(identity)
            result = run_mutls("certmgr", "--install-p12", p12, "-p", PASSWORD, env=env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.count(": imported") == 2, result.stdout
        made[name] = home
    return made
