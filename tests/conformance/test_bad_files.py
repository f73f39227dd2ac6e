"""Corrupt, truncated and unreadable files given to every command that reads one: one clear
line naming the file, a non-zero exit, nothing on stdout, no partial output file, no traceback.

Already elsewhere (not repeated): a wrong P12 password (test_pki_core, test_pkcs12_cli,
test_get, test_doctor), one corrupt file each for certmgr, inspect and pkcs12.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import FIXTURES, PASSWORD, PKIFiles, run_mutls


@dataclass(frozen=True)
class BadFile:
    """How to spoil a good file of one kind."""

    kind: str
    source: str  # a file of test_pki's directory, or "mono:NAME" for tests/fixtures/mono
    spoil: str  # "truncate", "garbage", "missing" or "directory"


def make(bad: BadFile, test_pki: PKIFiles, where: Path) -> Path:
    """Write the spoiled file under ``where`` and return its path."""
    origin = (
        FIXTURES / bad.source.removeprefix("mono:")
        if bad.source.startswith("mono:")
        else test_pki.directory / bad.source
    )
    path = where / f"bad-{bad.kind}-{bad.spoil}{origin.suffix}"
    data = origin.read_bytes()
    if bad.spoil == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif bad.spoil == "garbage":
        # same kind of start (PEM armour, DER SEQUENCE, PVK magic), then noise
        path.write_bytes(data[:16] + bytes(range(256)) * 2)
    elif bad.spoil == "directory":
        path.mkdir()
    # "missing": nothing is written
    return path


CERTS = [BadFile("cert", "root.pem", s) for s in ("truncate", "garbage", "missing", "directory")]
DER = [BadFile("der", "mono:root.cer", s) for s in ("truncate", "garbage")]
KEYS = [BadFile("key", "poupou.key", s) for s in ("truncate", "garbage", "missing")]
PVK = [BadFile("pvk", "mono:root.key", s) for s in ("truncate", "garbage")]
P12 = [BadFile("p12", "poupou.p12", s) for s in ("truncate", "garbage", "missing", "directory")]
CRLS = [BadFile("crl", "root.crl.pem", s) for s in ("truncate", "garbage", "missing")]


def _ids(files: list[BadFile]) -> list[str]:
    return [f"{b.kind}-{b.spoil}" for b in files]


# Each command line: {bad} is the spoiled file, {out} and {outkey} outputs that must not appear,
# {pki} the test PKI's directory; the port 9 URL is never reached (the file is read first).
COMMANDS: dict[str, tuple[list[BadFile], list[str]]] = {
    "makecert-issuer-key": (
        KEYS + PVK,
        [
            "makecert",
            "-iv",
            "{bad}",
            "-ic",
            "{pki}/root.pem",
            "-n",
            "CN=x",
            "-sv",
            "{outkey}",
            "{out}",
        ],
    ),
    "makecert-issuer-cert": (
        CERTS + DER,
        [
            "makecert",
            "-iv",
            "{pki}/server.key",
            "-ic",
            "{bad}",
            "-n",
            "CN=x",
            "-sv",
            "{outkey}",
            "{out}",
        ],
    ),
    "makecert-subject-key": (
        [b for b in KEYS + PVK if b.spoil != "missing"],  # a missing -sv key is created
        ["makecert", "-r", "-n", "CN=x", "-sv", "{bad}", "{out}"],
    ),
    "pkcs12-in": (P12, ["pkcs12", "-in", "{bad}", "-passin", f"pass:{PASSWORD}", "-out", "{out}"]),
    "pkcs12-export-cert": (
        CERTS,
        [
            "pkcs12",
            "-export",
            "-in",
            "{bad}",
            "-inkey",
            "{pki}/poupou.key",
            "-passout",
            "pass:x",
            "-out",
            "{out}",
        ],
    ),
    "pkcs12-export-key": (
        KEYS,
        [
            "pkcs12",
            "-export",
            "-in",
            "{pki}/poupou.pem",
            "-inkey",
            "{bad}",
            "-passout",
            "pass:x",
            "-out",
            "{out}",
        ],
    ),
    "inspect": (CERTS + DER + KEYS + PVK + P12 + CRLS, ["inspect", "--pass", PASSWORD, "{bad}"]),
    "certmgr-add": (CERTS + DER + P12, ["certmgr", "-add", "-c", "-p", PASSWORD, "Trust", "{bad}"]),
    "certmgr-add-crl": (CRLS, ["certmgr", "-add", "-crl", "CA", "{bad}"]),
    "serve-p12file": (
        P12,
        ["xsp", "--https", "--p12file", "{bad}", "--pkpwd", PASSWORD, "--port", "0", "--nonstop"],
    ),
    "serve-cert": (
        CERTS,
        ["serve", "--cert", "{bad}", "--key", "{pki}/server.key", "--port", "0", "--nonstop"],
    ),
    "serve-client-ca": (
        CERTS + DER,
        [
            "serve",
            "--p12",
            "{pki}/server.p12",
            "--pkpwd",
            PASSWORD,
            "--client-cert",
            "optional",
            "--client-ca",
            "{bad}",
            "--port",
            "0",
            "--nonstop",
        ],
    ),
    "serve-crl": (
        CRLS,
        [
            "serve",
            "--p12",
            "{pki}/server.p12",
            "--pkpwd",
            PASSWORD,
            "--client-cert",
            "optional",
            "--client-ca",
            "{pki}/root.pem",
            "--crl",
            "{bad}",
            "--port",
            "0",
            "--nonstop",
        ],
    ),
    "get-cert": (P12, ["get", "--cert", "{bad}", "--pass", PASSWORD, "https://127.0.0.1:9/"]),
    "get-key": (
        KEYS,
        ["get", "--cert", "{pki}/poupou.pem", "--key", "{bad}", "https://127.0.0.1:9/"],
    ),
    "get-cacert": (CERTS + DER, ["get", "--cacert", "{bad}", "https://127.0.0.1:9/"]),
}
CASES = [
    pytest.param(command, bad, id=f"{command}-{b_id}")
    for command, (files, _) in COMMANDS.items()
    for bad, b_id in zip(files, _ids(files), strict=True)
]


@pytest.mark.parametrize(("command", "bad"), CASES)
def test_a_bad_file_is_one_clear_line(
    test_pki: PKIFiles, sandbox_home: Path, tmp_path: Path, command: str, bad: BadFile
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = make(bad, test_pki, work)
    out = work / "out.file"
    argv = [
        a.replace("{bad}", str(path))
        .replace("{outkey}", str(work / "out.key"))
        .replace("{out}", str(out))
        .replace("{pki}", str(test_pki.directory))
        for a in COMMANDS[command][1]
    ]
    before = sorted(p.name for p in work.iterdir())
    result = run_mutls(*argv, cwd=work, timeout=30)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert path.name in lines[0], lines[0]
    assert result.stdout == "" or command == "inspect", result.stdout
    assert sorted(p.name for p in work.iterdir()) == before, "a partial output file was left"
    if command.startswith("certmgr"):
        trust = sandbox_home / ".config" / "mutls"
        stored = [p for p in trust.rglob("*") if p.is_file()] if trust.exists() else []
        assert stored == [], f"the store changed: {stored}"
