"""``mutls demo``: the article's whole scenario, end to end, with mutls's own commands.

In a fresh directory it runs the article's steps as the article writes them, each after the
prefix ``mutls``: ``makecert`` for the root CA, the server (``pollux.p12``, here for
``localhost``) and the client ``poupou``, plus an expired client and one from another CA;
``certmgr --add -c Trust root.cer`` (in a store kept inside the directory, never the user's);
``pkcs12 -nodes`` for wget and curl; ``xsp`` three times (plain, ``--https-client-accept``,
``--https-client-require``); then fetches the test page with ``mutls get`` (the article's
hwr2), wget and curl. It prints every command, then each outcome beside the command that
reproduced it, stops the servers, and exits 0 only if every outcome is the article's.
"""

from __future__ import annotations

import os
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

from mutls.apps.testpage import ANONYMOUS, INSECURE
from mutls.cli.common import ArgumentParser
from mutls.client.http import summary_line
from mutls.errors import MutlsError
from mutls.pki.files import make_directories

HELP = "play the article end to end and print the four outcomes"
PASSWORD = "s3kr3t"  # noqa: S105 - the article's demo password, for throwaway files
WAIT_S = 15.0
VALID = "Hello CN=poupou, your certificate is valid"

#: the article's certificate-making steps, as typed (each after the prefix `mutls`).
SETUP = (
    "makecert -r -n 'CN=My Own Test CA' -sv root.key root.cer",
    "certmgr --add -c Trust root.cer",
    # The article names the server by its host name (pollux); the demo's host is localhost.
    f"makecert -iv root.key -ic root.cer -eku -n CN=localhost -p12 pollux.p12 {PASSWORD}",
    f"makecert -iv root.key -ic root.cer -eku -n CN=poupou -p12 poupou.p12 {PASSWORD}",
    "makecert -iv root.key -ic root.cer -eku clientAuth -n CN=oldtimer"
    f" -b 01/01/2020 -e 12/31/2020 -p12 oldtimer.p12 {PASSWORD}",
    "makecert -r -n 'CN=Untrusted Test CA' -sv evil.key evil.cer",
    f"makecert -iv evil.key -ic evil.cer -eku clientAuth -n CN=mallory -p12 mallory.p12 {PASSWORD}",
    # wget and curl read PEM: the article's `openssl pkcs12 -nodes`, and the root as PEM.
    f"pkcs12 -in poupou.p12 -out poupou.pem -nodes -passin pass:{PASSWORD}",
    f"pkcs12 -in mallory.p12 -out mallory.pem -nodes -passin pass:{PASSWORD}",
    "certmgr -put -c Trust 'My Own Test CA' root.pem -pem",
)


@dataclass(frozen=True)
class Case:
    """One fetch of the test page and what it must say."""

    outcome: str
    title: str
    command: list[str]  # as shown; "mutls" is run as this Python's `-m mutls`
    expected: tuple[str, ...]


def server_commands(ports: Sequence[int]) -> list[list[str]]:
    """The article's three ``xsp`` command lines: plain, accept, require."""
    tls = ["--p12file", "pollux.p12", "--pkpwd", PASSWORD]
    common = ["--address", "127.0.0.1", "--nonstop"]
    return [
        ["mutls", "xsp", "--port", str(ports[0]), *common],
        ["mutls", "xsp", "--https-client-accept", "--port", str(ports[1]), *tls, *common],
        ["mutls", "xsp", "--https-client-require", "--port", str(ports[2]), *tls, *common],
    ]


#: the Debian package of each outside program the demo fetches with.
PACKAGES = {"curl": "curl", "wget": "wget"}


def cases(ports: Sequence[int]) -> list[Case]:
    """The fetches, in the article's order (wget and curl ones whether installed or not)."""
    accept = f"https://localhost:{ports[1]}/cctest.aspx"
    require = f"https://localhost:{ports[2]}/cctest.aspx"
    curl = ["curl", "-sS", "--max-time", "10", "--cacert", "root.pem"]
    plain = f"http://localhost:{ports[0]}/cctest.aspx"
    # `mutls get` speaks only HTTPS: plain HTTP needs curl, or wget where curl is missing.
    fetch_plain = (
        ["wget", "-qO-", plain]
        if shutil.which("curl") is None and shutil.which("wget")
        else ["curl", "-sS", "--max-time", "10", plain]
    )
    return [
        Case("insecure", "plain HTTP", fetch_plain, (INSECURE,)),
        Case(
            "anonymous",
            "--https-client-accept, no certificate",
            ["mutls", "get", accept],
            (ANONYMOUS,),
        ),
        Case(
            "valid",
            "--https-client-require, poupou.p12 (as hwr2.exe)",
            ["mutls", "get", require, "poupou.p12", PASSWORD],
            (VALID,),
        ),
        Case(
            "valid",
            "--https-client-require, poupou.pem with wget",
            [
                "wget",
                "-qO-",
                "--ca-certificate=root.pem",
                "--certificate=poupou.pem",
                "--private-key=poupou.pem",
                require,
            ],
            (VALID,),
        ),
        Case(
            "valid",
            "--https-client-require, poupou.pem with curl",
            [*curl, "--cert", "poupou.pem", require],
            (VALID,),
        ),
        Case(
            "NOT valid",
            "--https-client-require, mallory (another CA)",
            [*curl, "--cert", "mallory.pem", require],
            (
                "Hello CN=mallory, your certificate is NOT valid",
                "unable to get local issuer certificate",
            ),
        ),
        Case(
            "NOT valid",
            "--https-client-require, oldtimer (expired)",
            ["mutls", "get", require, "oldtimer.p12", PASSWORD],
            ("Hello CN=oldtimer, your certificate is NOT valid", "certificate has expired"),
        ),
        Case(
            "refused",
            "--https-client-require, no certificate",
            ["mutls", "get", require],
            ("client certificate required",),
        ),
    ]


def missing_program(case: Case) -> str | None:
    """The outside program ``case`` needs and this machine lacks, if any."""
    program = case.command[0]
    return None if program == "mutls" or shutil.which(program) else program


def runnable(command: Sequence[str]) -> list[str]:
    """``mutls ...`` as this interpreter's ``-m mutls``; other programs as they are."""
    if command[0] == "mutls":
        return [sys.executable, "-m", "mutls", *command[1:]]
    return list(command)


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


def play(directory: Path, out: object = sys.stdout) -> bool:
    """Run the scenario in ``directory``; True when every outcome is right."""

    def say(text: str = "") -> None:
        print(text, file=out)  # type: ignore[call-overload]

    started = time.monotonic()
    # certmgr's stores live under XDG_CONFIG_HOME: keep the demo's inside its directory.
    env = {**os.environ, "XDG_CONFIG_HOME": str(directory / ".config")}
    say(f"# in {directory}")
    say("$ export XDG_CONFIG_HOME=$PWD/.config   # the demo's certificate stores, not yours")
    for step in SETUP:
        say(f"$ mutls {step}")
        done = subprocess.run(
            runnable(["mutls", *shlex.split(step)]),
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        if done.returncode != 0:
            raise MutlsError(f"`mutls {step}` failed: {done.stderr.strip()}")
    ports = [free_port() for _ in range(3)]
    servers: list[subprocess.Popen[str]] = []
    ok = True
    seen: set[str] = set()
    not_run: dict[str, list[str]] = {}
    try:
        for command in server_commands(ports):
            say(f"$ {shlex.join(command)} &")
            servers.append(
                subprocess.Popen(
                    runnable(command),
                    cwd=directory,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + WAIT_S
        for port, server in zip(ports, servers, strict=True):
            wait_for_port(port, server, deadline)
        say()
        for case in cases(ports):
            if (program := missing_program(case)) is not None:
                not_run.setdefault(program, []).append(case.outcome)
                say(f"skip {case.title}: {program} is not installed")
                say(f"     $ {shlex.join(case.command)}")
                continue
            result = subprocess.run(
                runnable(case.command),
                cwd=directory,
                env=env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=30,
            )
            page = result.stdout + result.stderr
            right = all(e in page for e in case.expected)
            ok &= right
            if right:
                seen.add(case.outcome)
            why = f" ({case.expected[1]})" if right and len(case.expected) > 1 else ""
            said = summary_line(page) or "(empty)"
            say(f"{'ok  ' if right else 'FAIL'} {case.title}: {said}{why}")
            say(f"     $ {shlex.join(case.command)}")
            if not right:
                say(f"     expected: {' / '.join(case.expected)}")
    finally:
        for server in servers:
            stop(server)
    say()
    four = ["insecure", "anonymous", "NOT valid", "valid"]
    skipped = {o for outcomes in not_run.values() for o in outcomes} - seen
    marks = ", ".join(
        f"{o} {'ok' if o in seen else 'not run' if o in skipped else 'MISSING'}" for o in four
    )
    say(f"# the article's four outcomes: {marks}")
    if not_run:
        # A fetch not run is not a wrong outcome: say which program to install to see it.
        programs = sorted(not_run)
        packages = " ".join(sorted({PACKAGES[p] for p in programs}))
        say(f"# not run: {', '.join(programs)} not installed (Debian: apt-get install {packages})")
    ok &= all(o in seen or o in skipped for o in four)
    verdict = "some outcomes are WRONG"
    if ok:
        verdict = (
            "every outcome run is the article's" if not_run else ("every outcome is the article's")
        )
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
        directory = Path(args.dir).resolve()
        try:
            make_directories(directory)
        except OSError as exc:
            raise MutlsError(f"--dir {directory}: cannot create: {exc.strerror}") from None
        if any(directory.iterdir()):
            raise MutlsError(f"--dir {directory}: not empty (the demo makes fresh files)")
        return 0 if play(directory) else 1
    with tempfile.TemporaryDirectory(prefix="mutls-demo-") as tmp:
        ok = play(Path(tmp))
    print("# (files removed; keep them with `mutls demo --dir DIR` to rerun the commands)")
    return 0 if ok else 1
