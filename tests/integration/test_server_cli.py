"""``mutls xsp`` and ``mutls serve`` as a user runs them: the article's command line, trust from
the certificate stores, an app imported from a directory, static files, signals, and the flag
table's refusals."""

from __future__ import annotations

import contextlib
import ctypes.util
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mutls import pki
from mutls.cli.serve import build_parser, config_from_args, resolve_modes
from mutls.errors import UsageError
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import (
    ARTICLE_MAKECERT,
    FIXTURES,
    PASSWORD,
    PKIFiles,
    curl,
    free_port,
    mutls_process,
    run_mutls,
)


def client(test_pki: PKIFiles, name: str) -> list[str]:
    return [
        "--cacert",
        str(test_pki.ca_cert),
        "--cert",
        str(test_pki.cert(name)),
        "--key",
        str(test_pki.key(name)),
    ]


def test_the_articles_xsp_command_with_the_trust_store(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    shutil.copy(test_pki.p12("server"), tmp_path / "pollux.p12")
    added = run_mutls("certmgr", "-add", "-c", "Trust", test_pki.ca_cert, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    # the leaf alone: disallowed.pem also holds the root, which must stay trusted
    pki.write_certificate(tmp_path / "banned.pem", test_pki.identities["disallowed"].certificate)
    banned = run_mutls("certmgr", "-add", "-c", "Disallowed", "banned.pem", cwd=tmp_path)
    assert banned.returncode == 0, banned.stderr
    port = free_port()
    log = tmp_path / "server.log"
    article = ["xsp", "--https-client-require", "--port", str(port)]
    article += ["--p12file", "pollux.p12", "--pkpwd", PASSWORD]
    pidfile = tmp_path / "xsp.pid"
    extra = ["--address", "127.0.0.1", "--nonstop", "--pidfile", str(pidfile), "--verbose"]
    with mutls_process([*article, *extra], tmp_path, log) as process:
        url = f"https://localhost:{port}/cctest.aspx"
        valid = curl(url, *client(test_pki, "poupou"))
        assert "Hello CN=poupou, your certificate is valid" in valid.stdout
        expired = curl(url, *client(test_pki, "expired"))
        assert "Hello CN=expired, your certificate is NOT valid" in expired.stdout
        disallowed = curl(url, *client(test_pki, "disallowed"))
        assert "certificate is in the Disallowed store" in disallowed.stdout
        anonymous = curl(url, "--cacert", str(test_pki.ca_cert), "-w", "%{http_code}")
        assert anonymous.stdout == "client certificate required\n403"
        wget = subprocess.run(
            [
                "wget",
                "-q",
                "-O",
                "-",
                f"--ca-certificate={test_pki.ca_cert}",
                f"--certificate={test_pki.cert('poupou')}",
                f"--private-key={test_pki.key('poupou')}",
                "--tries=1",
                "--timeout=10",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Hello CN=poupou, your certificate is valid" in wget.stdout
        assert pidfile.read_text().strip() == str(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    text = log.read_text()
    assert f"https://localhost:{port}/" in text
    assert "client certificate require, policy report" in text
    assert "must" in text and "valid" in text  # the report policy's warning
    assert "403 client certificate required" in text  # the refusal is logged
    assert '"GET /cctest.aspx HTTP/1.1" 200' in text
    assert 'subject="CN=poupou" verify=SUCCESS' in text
    assert not pidfile.exists()


def test_serve_imports_an_app_from_app_dir(test_pki: PKIFiles, tmp_path: Path) -> None:
    app_dir = tmp_path / "project"
    app_dir.mkdir()
    (app_dir / "mysite.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['SSL_CLIENT_VERIFY'].encode(), b' ', "
        "environ.get('SSL_CLIENT_S_DN_CN', '-').encode()]\n"
    )
    port = free_port()
    args = ["serve", "mysite:app", "--app-dir", str(app_dir), "--port", str(port)]
    args += ["--cert", str(test_pki.cert("server")), "--key", str(test_pki.key("server"))]
    args += ["--client-cert", "optional", "--client-ca", str(test_pki.ca_cert)]
    args += ["--crl", str(test_pki.crl_path)]
    with mutls_process(args, tmp_path, tmp_path / "serve.log"):
        url = f"https://localhost:{port}/"
        assert curl(url, *client(test_pki, "poupou")).stdout == "SUCCESS poupou"
        assert curl(url, "--cacert", str(test_pki.ca_cert)).stdout == "NONE -"
        revoked = curl(url, *client(test_pki, "revoked"), "-w", " %{http_code}")
        assert revoked.stdout == "client certificate not valid: certificate revoked\n 403"
    log = (tmp_path / "serve.log").read_text()
    assert "mode: HTTPS, client certificate optional, policy strict" in log


def test_root_serves_files_but_never_keys(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello")
    (tmp_path / "root.key").write_text("THE CA KEY")
    port = free_port()
    args = ["xsp", "--port", str(port), "--address", "127.0.0.1", "--root", str(tmp_path)]
    with mutls_process(args, tmp_path, tmp_path / "xsp.log"):
        base = f"http://127.0.0.1:{port}"
        assert curl(f"{base}/hello.txt").stdout == "hello"
        key = curl(f"{base}/root.key", "-w", "%{http_code}")
        assert key.stdout.endswith("404") and "THE CA KEY" not in key.stdout
        assert "Hello from an insecure session." in curl(f"{base}/cctest.aspx").stdout


def test_root_never_serves_key_material_in_the_articles_folder(
    test_pki: PKIFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder as the README leaves it, with a backup, a store, a key log and a symlink out.
    folder = tmp_path / "article"
    folder.mkdir()
    for argv in ARTICLE_MAKECERT:
        assert run_mutls("makecert", *argv, cwd=folder).returncode == 0
    nodes = ["-in", "poupou.p12", "-out", "poupou.pem", "-nodes", "-passin", f"pass:{PASSWORD}"]
    assert run_mutls("pkcs12", *nodes, cwd=folder).returncode == 0
    shutil.copy(folder / "root.key", folder / "root.key.bak")
    store_env = {"XDG_CONFIG_HOME": str(folder / ".config")}
    my = ["-add", "-c", "My", "poupou.p12", "-p", PASSWORD]
    assert run_mutls("certmgr", *my, cwd=folder, env=store_env).returncode == 0
    stored_key = next((folder / ".config").rglob("*.key")).relative_to(folder)
    (tmp_path / "outside.txt").write_text("outside the root")
    (folder / "d").mkdir()
    (folder / "d" / "index.html").symlink_to(tmp_path / "outside.txt")
    (folder / "hello.txt").write_text("hello")
    monkeypatch.setenv("SSLKEYLOGFILE", str(folder / "keys.log"))  # curl's TLS secrets, there
    port = free_port()
    args = ["xsp", "--https", "--p12file", str(test_pki.p12("server")), "--pkpwd", PASSWORD]
    args += ["--port", str(port), "--address", "127.0.0.1", "--root", "."]
    log = tmp_path / "xsp.log"
    with mutls_process(args, folder, log):
        base, tls = f"https://localhost:{port}", ["--cacert", str(test_pki.ca_cert)]
        assert curl(f"{base}/hello.txt", *tls).stdout == "hello"
        public = curl(f"{base}/root.cer", *tls, "-o", os.devnull, "-w", "%{http_code}")
        assert public.stdout == "200"  # a certificate is public: served
        assert b"CLIENT_" in (folder / "keys.log").read_bytes()
        for path in ("poupou.pem", "root.key.bak", "keys.log", "d/", str(stored_key)):
            answer = curl(f"{base}/{path}", *tls, "-w", " %{http_code}")
            assert answer.stdout == "not found\n 404", path
    text = log.read_text()
    for line in (
        "static file poupou.pem refused (404): key material: PEM private key (PRIVATE KEY)",
        "static file root.key.bak refused (404): key material: PEM private key (PRIVATE KEY)",
        "static file keys.log refused (404): key material: TLS key log (",
        "static file d refused (404): leads outside the root",
        f"static file {stored_key} refused (404): a dot-file, a dot-directory or '..'",
    ):
        assert line in text, line


def test_no_root_serves_no_files(tmp_path: Path) -> None:
    (tmp_path / "root.key").write_text("THE CA KEY")
    port = free_port()
    args = ["xsp", "--port", str(port), "--address", "127.0.0.1"]
    with mutls_process(args, tmp_path, tmp_path / "xsp.log"):
        key = curl(f"http://127.0.0.1:{port}/root.key", "-w", "%{http_code}")
        assert key.stdout.endswith("404") and "THE CA KEY" not in key.stdout


def test_ipv6_listener(test_pki: PKIFiles, tmp_path: Path) -> None:
    port = free_port("::1")
    args = ["serve", "--address", "::1", "--port", str(port)]
    with mutls_process(args, tmp_path, tmp_path / "v6.log"):
        assert "insecure" in curl(f"http://[::1]:{port}/").stdout


# -- refusals at start --------------------------------------------------------------------------


def test_require_strict_without_any_anchor_is_refused_at_start(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    result = run_mutls(
        "serve",
        "--p12",
        test_pki.p12("server"),
        "--pkpwd",
        PASSWORD,
        "--client-cert",
        "require",
        "--port",
        str(free_port()),
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "trust anchor" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_password_and_busy_port_are_one_line(test_pki: PKIFiles, tmp_path: Path) -> None:
    wrong = run_mutls("xsp", "--https", "--p12file", test_pki.p12("server"), "--pkpwd", "nope")
    assert wrong.returncode == 2 and "--pkpwd" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1
    port = free_port()
    with mutls_process(["serve", "--port", str(port)], tmp_path, tmp_path / "first.log"):
        busy = run_mutls("serve", "--port", str(port))
    assert busy.returncode == 2 and f":{port}" in busy.stderr and "--port" in busy.stderr
    assert "Traceback" not in busy.stderr


CERT = ["--p12file", "s.p12"]


@pytest.mark.parametrize(
    ("argv", "wanted"),
    [
        ([], (False, ClientCertMode.NONE, VerifyPolicy.STRICT)),
        (["--https", *CERT], (True, ClientCertMode.NONE, VerifyPolicy.REPORT)),
        (["--https-client-accept", *CERT], (True, ClientCertMode.OPTIONAL, VerifyPolicy.REPORT)),
        (["--https-client-require", *CERT], (True, ClientCertMode.REQUIRE, VerifyPolicy.REPORT)),
        (CERT, (True, ClientCertMode.NONE, VerifyPolicy.STRICT)),
        ([*CERT, "--client-cert", "require"], (True, ClientCertMode.REQUIRE, VerifyPolicy.STRICT)),
        (
            ["--https-client-require", *CERT, "--verify", "strict"],
            (True, ClientCertMode.REQUIRE, VerifyPolicy.STRICT),
        ),
        (
            ["--https-client-accept", *CERT, "--client-cert", "optional"],
            (True, ClientCertMode.OPTIONAL, VerifyPolicy.REPORT),
        ),
        (
            [*CERT, "--client-cert", "optional", "--verify", "report"],
            (True, ClientCertMode.OPTIONAL, VerifyPolicy.REPORT),
        ),
    ],
)
def test_flag_table(argv: list[str], wanted: tuple[bool, ClientCertMode, VerifyPolicy]) -> None:
    assert resolve_modes(build_parser().parse_args(argv)) == wanted


@pytest.mark.parametrize(
    ("argv", "flags"),
    [
        (["--https", "--client-cert", "require", *CERT], ("--https", "--client-cert")),
        (
            ["--https-client-accept", "--client-cert", "require", *CERT],
            ("--https-client-accept", "--client-cert"),
        ),
        (["--https", "--https-client-require", *CERT], ("--https", "--https-client-require")),
        (["--https"], ("--https", "--p12file")),
        (["--client-cert", "optional"], ("--client-cert", "--p12file")),
        (["--client-ca", "root.cer"], ("--client-ca", "--p12file")),
        (["--verify", "report"], ("--verify", "--p12file")),
        (["--keylog", "k.txt"], ("--keylog", "--p12file")),
        ([*CERT, "--cert", "c.pem"], ("--p12file", "--cert")),
        ([*CERT, "--reject-at-handshake"], ("--reject-at-handshake", "require")),
    ],
)
def test_contradicting_flags_name_both(
    argv: list[str], flags: tuple[str, str], test_pki: PKIFiles
) -> None:
    """Through all the CLI does (the flag table, then ServerConfig, which refuses what needs TLS),
    with a real certificate where one is given."""
    p12 = str(test_pki.p12("server"))
    argv = [p12 if arg == CERT[1] else arg for arg in argv] + ["--pkpwd", PASSWORD]
    with pytest.raises(UsageError) as caught:
        config_from_args(build_parser().parse_args(argv))
    for flag in flags:
        assert flag in str(caught.value)


def test_contradiction_from_the_command_line_is_one_line() -> None:
    result = run_mutls("xsp", "--https", "--client-cert", "optional", "--p12file", "x.p12")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "mutls xsp: --https and --client-cert optional contradict each other: give one"
    )


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_keylog_is_announced_loudly(test_pki: PKIFiles, tmp_path: Path) -> None:
    port = free_port()
    keylog = tmp_path / "keys.txt"
    args = ["serve", "--p12", str(test_pki.p12("server")), "--pkpwd", PASSWORD]
    args += ["--port", str(port), "--keylog", str(keylog)]
    with mutls_process(args, tmp_path, tmp_path / "k.log"):
        curl(f"https://localhost:{port}/", "--cacert", str(test_pki.ca_cert))
    assert "WARNING" in (tmp_path / "k.log").read_text()
    assert "CLIENT_" in keylog.read_text() or "SECRET" in keylog.read_text()


def running(pid: int) -> bool:
    """``pid`` runs: it exists and is no zombie (an orphan's exit is reaped by whoever adopted
    it, which in a container may be nobody)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_workers_share_the_port_and_are_restarted(test_pki: PKIFiles, tmp_path: Path) -> None:
    port = free_port()
    args = ["serve", "--workers", "2", "--port", str(port), "--p12", str(test_pki.p12("server"))]
    args += ["--pkpwd", PASSWORD, "--client-cert", "optional", "--client-ca", str(test_pki.ca_cert)]
    with mutls_process(args, tmp_path, tmp_path / "w.log") as supervisor:
        url = f"https://localhost:{port}/"
        deadline = time.monotonic() + 20
        while len(children_of(supervisor.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = children_of(supervisor.pid)
        assert len(first) == 2
        for _ in range(4):
            assert (
                "Hello CN=poupou, your certificate is valid"
                in curl(url, *client(test_pki, "poupou")).stdout
            )
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        while (
            victim in children_of(supervisor.pid) or len(children_of(supervisor.pid)) < 2
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        now = children_of(supervisor.pid)
        assert victim not in now and len(now) == 2
        assert "your certificate is valid" in curl(url, *client(test_pki, "poupou")).stdout
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0
    log = (tmp_path / "w.log").read_text()
    assert "2 worker processes" in log and "starting another" in log


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_workers_stop_when_their_supervisor_is_killed(test_pki: PKIFiles, tmp_path: Path) -> None:
    """SIGKILL to the supervisor (the OOM killer's way) leaves no worker serving unsupervised:
    each sees it was adopted and stops, and the port is free again."""
    port = free_port()
    args = ["serve", "--workers", "2", "--port", str(port), "--p12", str(test_pki.p12("server"))]
    args += ["--pkpwd", PASSWORD]
    with mutls_process(args, tmp_path, tmp_path / "o.log") as supervisor:
        deadline = time.monotonic() + 20
        while len(children_of(supervisor.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = children_of(supervisor.pid)
        assert len(workers) == 2
        supervisor.kill()
        supervisor.wait(10)
        deadline = time.monotonic() + 30
        while any(running(pid) for pid in workers):
            if time.monotonic() > deadline:
                for pid in workers:  # the test's own clean-up, then the failure
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"workers {workers} still run without their supervisor")
            time.sleep(0.1)
    assert (tmp_path / "o.log").read_text().count("the supervisor") == 2


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_rereads_the_stores(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path, workers: str
) -> None:
    assert run_mutls("certmgr", "-add", "-c", "Trust", test_pki.ca_cert).returncode == 0
    port = free_port()
    args = ["serve", "--p12", str(test_pki.p12("server")), "--pkpwd", PASSWORD]
    args += ["--client-cert", "optional", "--verify", "report", "--port", str(port)]
    args += ["--workers", workers]
    log = tmp_path / "hup.log"
    url = f"https://localhost:{port}/"
    with mutls_process(args, tmp_path, log) as process:
        deadline = time.monotonic() + 20
        while len(children_of(process.pid)) < int(workers) - 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = children_of(process.pid)
        before = curl(url, *client(test_pki, "disallowed"))
        assert "Hello CN=banned, your certificate is valid" in before.stdout
        pki.write_certificate(
            tmp_path / "banned.pem", test_pki.identities["disallowed"].certificate
        )
        assert (
            run_mutls("certmgr", "-add", "-c", "Disallowed", tmp_path / "banned.pem").returncode
            == 0
        )
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        # one line per generation; with workers, the old ones are gone once the new serve
        while "trust reloaded" not in log.read_text() or (
            children_of(process.pid) & started or len(children_of(process.pid)) < len(started)
        ):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        for _ in range(int(workers) * 2):  # whichever worker answers
            after = curl(url, *client(test_pki, "disallowed"))
            assert "Hello CN=banned, your certificate is NOT valid" in after.stdout
            assert "certificate is in the Disallowed store" in after.stdout
        assert process.poll() is None


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_a_respawned_worker_keeps_a_revocation(
    sandbox_home: Path, test_pki: PKIFiles, tmp_path: Path
) -> None:
    # Disallowed + SIGHUP, then every worker killed (as an OOM kill would): the workers the
    # supervisor starts again judge by the trust in force, not the start-up one.
    assert run_mutls("certmgr", "-add", "-c", "Trust", test_pki.ca_cert).returncode == 0
    port = free_port()
    args = ["serve", "--p12", str(test_pki.p12("server")), "--pkpwd", PASSWORD, "--port"]
    args += [str(port), "--client-cert", "optional", "--verify", "report", "--workers", "2"]
    log = tmp_path / "respawn.log"
    url = f"https://localhost:{port}/"
    with mutls_process(args, tmp_path, log) as supervisor:
        deadline = time.monotonic() + 30
        while len(children_of(supervisor.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        banned = tmp_path / "banned.pem"
        pki.write_certificate(banned, test_pki.identities["disallowed"].certificate)
        assert run_mutls("certmgr", "-add", "-c", "Disallowed", banned).returncode == 0
        before = children_of(supervisor.pid)
        supervisor.send_signal(signal.SIGHUP)
        while "trust reloaded" not in log.read_text() or (
            children_of(supervisor.pid) & before or len(children_of(supervisor.pid)) < 2
        ):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        first = children_of(supervisor.pid)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        while (
            children_of(supervisor.pid) & first or len(children_of(supervisor.pid)) < 2
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not children_of(supervisor.pid) & first
        for _ in range(4):  # whichever worker answers
            after = curl(url, *client(test_pki, "disallowed"))
            assert "Hello CN=banned, your certificate is NOT valid" in after.stdout
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0


@pytest.mark.parametrize(
    ("library", "says"),
    [
        ("/nonexistent/libssl.so.3", "cannot load OpenSSL from /nonexistent/libssl.so.3"),
        (ctypes.util.find_library("z") or "libz.so.1", "is not OpenSSL 3"),
    ],
)
def test_a_missing_openssl_is_one_line(test_pki: PKIFiles, library: str, says: str) -> None:
    args = ["xsp", "--https", "--port", "0", "--p12file", test_pki.p12("server"), "--pkpwd"]
    result = run_mutls(*args, PASSWORD, env={"MUTLS_LIBSSL": library})
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_monos_rsa_1024_server_p12_names_the_real_cause(tmp_path: Path) -> None:
    # Mono's own localhost.p12: its key matches its certificate; OpenSSL's security level
    # refuses the key's size ("ee key too small"), and the line must say that, not "mismatch".
    result = run_mutls(
        "xsp", "--p12file", FIXTURES / "localhost.p12", "--pkpwd", "s3kr3t", "--port", "0",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "OpenSSL refuses its RSA 1024 key (ee key too small" in result.stderr
    assert "does not match" not in result.stderr


def test_client_ca_and_crl_files_are_checked_when_the_config_is_made(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    from mutls.errors import UsageError
    from mutls.server import ServerConfig
    from mutls.tls import ClientCertMode

    server = test_pki.identities["server"]
    (tmp_path / "broken.crl").write_text("not a CRL")
    for changes, said in (
        ({"client_ca_files": (str(tmp_path / "root.pem"),)}, "--client-ca "),
        ({"crl_files": (str(tmp_path / "broken.crl"),)}, "--crl "),
    ):
        with pytest.raises(UsageError, match=said) as caught:
            ServerConfig(identity=server, client_cert=ClientCertMode.REQUIRE, **changes)  # type: ignore[arg-type]
        assert str(tmp_path) in str(caught.value) and "\n" not in str(caught.value)
    ok = ServerConfig(identity=server, client_ca_files=(str(test_pki.ca_cert),))
    assert ok.client_ca_files == (str(test_pki.ca_cert),)
