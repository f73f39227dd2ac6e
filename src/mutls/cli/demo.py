"""``mutls demo``: the article's whole scenario, end to end, in a few seconds.

In a fresh directory it makes the root CA, a ``localhost`` server certificate (``pollux.p12``),
a valid client (``CN=poupou``), one from another CA and an expired one; starts ``mutls xsp``
twice on free ports (plain HTTP, and HTTPS accepting client certificates, as the article's
``--https-client-accept``); fetches the test page with curl over plain HTTP, over HTTPS without
a certificate and with each client certificate; prints each outcome beside the command that
reproduces it; stops the servers; exits 0 only if every outcome is the expected one.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mutls import pki
from mutls.apps.testpage import ANONYMOUS, INSECURE
from mutls.cli.common import ArgumentParser
from mutls.errors import MutlsError

HELP = "play the article end to end and print the four outcomes"
PASSWORD = "s3kr3t"  # noqa: S105 - the article's demo password, for throwaway files
WAIT_S = 15.0


@dataclass(frozen=True)
class Case:
    """One fetch of the test page and what it must say."""

    title: str
    command: list[str]
    expected: tuple[str, ...]


def make_pki(directory: Path) -> None:
    """The article's files: root CA, server P12, and three client certificates as PEM."""
    ca = pki.CertificateAuthority.create("CN=My Own Test CA")
    ca.write(directory / "root.cer", directory / "root.key")  # DER, as Mono's makecert
    pki.write_certificate(directory / "root.pem", ca.certificate)  # PEM, for curl --cacert
    ca.issue_server("localhost", "127.0.0.1").write_p12(directory / "pollux.p12", PASSWORD)
    # PEM with the key inside, as `mutls pkcs12 -in poupou.p12 -out poupou.pem -nodes` makes.
    ca.issue_client("CN=poupou").write_pem(directory / "poupou.pem")
    other = pki.CertificateAuthority.create("CN=Somebody Else's CA")
    other.issue_client("CN=mallory").write_pem(directory / "mallory.pem")
    now = dt.datetime.now(dt.UTC)
    ca.issue_client(
        "CN=oldtimer", not_before=now - dt.timedelta(days=60), not_after=now - dt.timedelta(days=1)
    ).write_pem(directory / "oldtimer.pem")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[str], deadline: float) -> None:
    """Return once ``port`` accepts connections; raise if the server died or took too long."""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read() if process.stderr else ""
            raise MutlsError(f"the server exited early: {err.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise MutlsError(f"the server did not listen on port {port} within {WAIT_S:.0f} s")


def server_commands(http_port: int, https_port: int) -> list[list[str]]:
    """The two ``mutls xsp`` command lines (plain HTTP, and HTTPS as the article's)."""
    common = ["--address", "127.0.0.1", "--nonstop"]
    return [
        ["mutls", "xsp", "--port", str(http_port), *common],
        [
            "mutls",
            "xsp",
            "--https-client-accept",
            "--port",
            str(https_port),
            "--p12file",
            "pollux.p12",
            "--pkpwd",
            PASSWORD,
            "--client-ca",
            "root.cer",
            *common,
        ],
    ]


def cases(curl: str, http_port: int, https_port: int) -> list[Case]:
    """The fetches, in the article's order."""
    page = f"https://localhost:{https_port}/cctest.aspx"
    base = [curl, "-sS", "--max-time", "10"]
    tls = [*base, "--cacert", "root.pem"]
    return [
        Case("plain HTTP", [*base, f"http://localhost:{http_port}/cctest.aspx"], (INSECURE,)),
        Case("HTTPS, no client certificate", [*tls, page], (ANONYMOUS,)),
        Case(
            "HTTPS, poupou (valid)",
            [*tls, "--cert", "poupou.pem", page],
            ("Hello CN=poupou, your certificate is valid",),
        ),
        Case(
            "HTTPS, mallory (another CA)",
            [*tls, "--cert", "mallory.pem", page],
            (
                "Hello CN=mallory, your certificate is NOT valid",
                "unable to get local issuer certificate",
            ),
        ),
        Case(
            "HTTPS, oldtimer (expired)",
            [*tls, "--cert", "oldtimer.pem", page],
            ("Hello CN=oldtimer, your certificate is NOT valid", "certificate has expired"),
        ),
    ]


def first_line(page: str) -> str:
    """The greeting of the test page (its ``<p>``), else the page's first line."""
    start = page.find("<p>")
    if start >= 0:
        return page[start + 3 : page.find("</p>", start)]
    return page.strip().splitlines()[0] if page.strip() else "(empty)"


def play(directory: Path, out: object = sys.stdout) -> bool:
    """Run the scenario in ``directory``; True when every outcome is right."""
    curl = shutil.which("curl")
    if curl is None:
        raise MutlsError("the demo fetches pages with curl, which is not installed")

    def say(text: str = "") -> None:
        print(text, file=out)  # type: ignore[call-overload]

    started = time.monotonic()
    say(f"# in {directory}: a root CA, pollux.p12 (localhost), poupou, mallory, oldtimer")
    make_pki(directory)
    http_port, https_port = free_port(), free_port()
    servers: list[subprocess.Popen[str]] = []
    ok = True
    try:
        for command in server_commands(http_port, https_port):
            say(f"$ {shlex.join(command)} &")
            servers.append(
                subprocess.Popen(
                    [sys.executable, "-m", "mutls", *command[1:]],
                    cwd=directory,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + WAIT_S
        wait_for_port(http_port, servers[0], deadline)
        wait_for_port(https_port, servers[1], deadline)
        say()
        for case in cases(curl, http_port, https_port):
            result = subprocess.run(
                case.command, cwd=directory, capture_output=True, text=True, timeout=20
            )
            page = result.stdout if result.returncode == 0 else result.stderr
            right = result.returncode == 0 and all(e in page for e in case.expected)
            ok &= right
            shown = ["curl", *case.command[1:]]
            why = f" ({case.expected[1]})" if right and len(case.expected) > 1 else ""
            say(f"{'ok  ' if right else 'FAIL'} {case.title}: {first_line(page)}{why}")
            say(f"     $ {shlex.join(shown)}")
            if not right:
                say(f"     expected: {' / '.join(case.expected)}")
    finally:
        for server in servers:
            stop(server)
    say()
    verdict = "every outcome is the article's" if ok else "some outcomes are WRONG"
    say(f"# {verdict} ({time.monotonic() - started:.1f} s)")
    return ok


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    if process.stderr is not None:
        process.stderr.close()


def main(argv: Sequence[str]) -> int:
    """``mutls demo [--dir DIR]``."""
    parser = ArgumentParser(prog="mutls demo", description=HELP)
    parser.add_argument(
        "--dir", metavar="DIR", help="work in DIR and keep its files (default: a temporary one)"
    )
    args = parser.parse_args(list(argv))
    if args.dir is not None:
        directory = Path(args.dir)
        directory.mkdir(parents=True, exist_ok=True)
        if any(directory.iterdir()):
            raise MutlsError(f"--dir {directory}: not empty (the demo makes fresh files)")
        return 0 if play(directory) else 1
    with tempfile.TemporaryDirectory(prefix="mutls-demo-") as tmp:
        ok = play(Path(tmp))
    print("# (files removed; keep them with `mutls demo --dir DIR` to rerun the commands)")
    return 0 if ok else 1
