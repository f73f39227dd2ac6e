"""Revocation end to end, as a user does it: issue, serve, revoke, publish, SIGHUP, refused.

Every step is the command line (``makecert``, ``certmgr``, ``revoke``, ``makecrl``); the server
is ``mutls serve`` reading the Trust store's CRLs (a full CRL, then a delta on it), then nginx
reading the published file with ``ssl_crl``. Both re-read on SIGHUP.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from helpers import curl, free_port, mutls_process, run_mutls, run_nginx, wait_for_text

DELTAS = "http://ca.example/delta.crl"


def mutls(cwd: Path, *args: str) -> str:
    """Run one command; it must succeed; its output."""
    done = run_mutls(*args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_pki(cwd: Path) -> None:
    """root.pem + root.key, server.pem/.key (localhost), castor and poupou (clientAuth)."""
    mutls(cwd, "makecert", "-r", "-n", "CN=My Own Test CA", "-sv", "root.key", "root.pem")
    ca = ["-iv", "root.key", "-ic", "root.pem"]
    mutls(cwd, "makecert", *ca, "--server", "-n", "CN=localhost", "-sv", "server.key", "server.pem")
    for name in ("castor", "poupou"):
        mutls(cwd, "makecert", *ca, "--client", "-n", f"CN={name}", "--crl-url",
              "http://ca.example/root.crl", "-sv", f"{name}.key", f"{name}.pem")  # fmt: skip


def fetch(cwd: Path, url: str, name: str) -> str:
    done = curl(url, "--cacert", str(cwd / "root.pem"), "--cert", str(cwd / f"{name}.pem"),
                "--key", str(cwd / f"{name}.key"))  # fmt: skip
    return done.stdout + done.stderr


def test_revoked_in_mutls_after_sighup(sandbox_home: Path, tmp_path: Path) -> None:
    ca = ["-iv", "root.key", "-ic", "root.pem"]
    make_pki(tmp_path)
    mutls(tmp_path, "certmgr", "-add", "-c", "Trust", "root.pem")
    mutls(tmp_path, "makecrl", *ca, "-out", "root.crl", "--freshest", DELTAS)
    mutls(tmp_path, "certmgr", "-add", "-crl", "Trust", "root.crl")
    port, log = free_port(), tmp_path / "server.log"
    args = ["serve", "--cert", "server.pem", "--key", "server.key", "--client-cert", "require"]
    url = f"https://localhost:{port}/"
    with mutls_process([*args, "--port", str(port)], tmp_path, log) as server:
        for name in ("castor", "poupou"):
            assert f"Hello CN={name}, your certificate is valid" in fetch(tmp_path, url, name)
        # a full CRL replaces the first one in the store
        mutls(tmp_path, "revoke", *ca, "castor.pem", "--reason", "keyCompromise")
        mutls(tmp_path, "makecrl", *ca, "-out", "root.crl")
        added = mutls(tmp_path, "certmgr", "-add", "-crl", "Trust", "root.crl")
        assert "replaced: " in added and "full CRL #1" in added
        server.send_signal(signal.SIGHUP)
        wait_for_text(log, "trust reloaded")
        assert "client certificate not valid: certificate revoked" in fetch(tmp_path, url, "castor")
        assert "your certificate is valid" in fetch(tmp_path, url, "poupou")
        # a delta CRL on it revokes the next one
        mutls(tmp_path, "revoke", *ca, "poupou.pem", "--reason", "superseded")
        out = mutls(tmp_path, "makecrl", *ca, "-out", "delta.crl", "--delta")
        assert "delta CRL #3 (base #2)" in out
        mutls(tmp_path, "certmgr", "-add", "-crl", "Trust", "delta.crl")
        server.send_signal(signal.SIGHUP)
        wait_for_text(log, "trust reloaded", 2)
        assert "client certificate not valid: certificate revoked" in fetch(tmp_path, url, "poupou")
        assert "certificate revoked" in fetch(tmp_path, url, "castor")
        assert server.poll() is None


NGINX = """
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_verify_client on;
        ssl_crl {crl};
        location / {{ return 200 "$ssl_client_verify $ssl_client_s_dn\\n"; }}
    }}
"""


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_revoked_in_nginx_after_sighup(tmp_path: Path) -> None:
    ca = ["-iv", "root.key", "-ic", "root.pem"]
    make_pki(tmp_path)
    mutls(tmp_path, "makecrl", *ca, "-out", "root.crl.pem")
    port, prefix = free_port(), tmp_path / "nginx"
    prefix.mkdir()
    http = NGINX.format(port=port, crl=tmp_path / "root.crl.pem")
    url = f"https://localhost:{port}/"
    with run_nginx(prefix, tmp_path, http, [port], master=True) as nginx:
        assert fetch(tmp_path, url, "poupou").startswith("SUCCESS CN=poupou")
        mutls(tmp_path, "revoke", *ca, "poupou.pem", "--reason", "keyCompromise")
        mutls(tmp_path, "makecrl", *ca, "-out", "root.crl.pem")
        nginx.send_signal(signal.SIGHUP)
        # the new worker reads the new CRL; the old one stops accepting when it says this
        wait_for_text(prefix / "error.log", "gracefully shutting down")
        refused = fetch(tmp_path, url, "poupou")
        assert "400 The SSL certificate error" in refused
        assert "certificate revoked" in (prefix / "error.log").read_text()
        assert fetch(tmp_path, url, "castor").startswith("SUCCESS CN=castor")
