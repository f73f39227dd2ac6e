"""Every password prompt on a real terminal: Ctrl-D is an answer, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import PKIFiles, run_in_terminal

CTRL_D = b"\x04"

#: a command that asks for a password, and (part of) the prompt it prints.
PROMPTS = {
    "makecert -p12": (
        ["makecert", "-iv", "root.key", "-ic", "root.pem", "-n", "CN=x", "-p12", "x.p12"],
        b"Enter Export Password:",
    ),
    "pkcs12 -in": (["pkcs12", "-in", "poupou.p12", "-out", "out.pem", "-nodes"], b"Import"),
    "pkcs12 -export": (
        ["pkcs12", "-export", "-in", "poupou.pem", "-inkey", "poupou.key", "-out", "o.p12"],
        b"Export Password:",
    ),
    "inspect": (["inspect", "poupou.p12"], b"assword"),
    "get": (["get", "https://127.0.0.1:9/", "--cert", "poupou.p12"], b"assword"),
    "xsp --p12file": (["xsp", "--p12file", "server.p12", "--port", "0"], b"assword"),
    "certmgr -add -c My": (["certmgr", "-add", "-c", "My", "poupou.p12"], b"assword"),
}


@pytest.mark.parametrize("command", PROMPTS.values(), ids=PROMPTS.keys())
def test_ctrl_d_at_a_password_prompt_is_one_line(
    command: tuple[list[str], bytes], test_pki: PKIFiles, tmp_path: Path
) -> None:
    for name in ("root.pem", "poupou.p12", "poupou.pem", "poupou.key", "server.p12"):
        shutil.copy(test_pki.directory / name, tmp_path / name)
    test_pki.ca.write(tmp_path / "unused.pem", tmp_path / "root.key")
    args, prompt = command
    code, out = run_in_terminal(args, cwd=tmp_path, wait_for=prompt, keys=CTRL_D)
    assert code == 2, out
    assert "Traceback" not in out and "EOFError" not in out, out
    assert "no password typed (end of input)" in out, out
    assert not (tmp_path / "x.p12").exists() and not (tmp_path / "o.p12").exists()
