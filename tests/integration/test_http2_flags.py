"""The HTTP/2 flags of ``mutls serve``: validated once, where the config is made, each refusal
one line naming the flag."""

from __future__ import annotations

import pytest

from helpers import PKIFiles, run_mutls


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--http", "2"], "--http 2 needs TLS"),
        (["--http", "3"], "invalid choice: '3'"),
        (
            ["--h2-max-streams", "0", "--cert", "{cert}", "--key", "{key}"],
            "--h2-max-streams 0: must be at least 1",
        ),
        (
            ["--h2-max-resets", "0", "--cert", "{cert}", "--key", "{key}"],
            "--h2-max-resets 0: must be at least 1",
        ),
        (
            ["--h2-max-control-frames", "-1", "--cert", "{cert}", "--key", "{key}"],
            "--h2-max-control-frames -1: must be at least 1",
        ),
    ],
)
def test_bad_http2_flags_are_one_line(test_pki: PKIFiles, args: list[str], says: str) -> None:
    filled = [a.format(cert=test_pki.cert("server"), key=test_pki.key("server")) for a in args]
    result = run_mutls("serve", *filled, "--port", "0")
    assert result.returncode == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr


def test_help_names_the_flags() -> None:
    out = run_mutls("serve", "--help").stdout
    for flag in ("--http {auto,1.1,2}", "--h2-max-streams N", "--h2-max-resets N"):
        assert flag in out
