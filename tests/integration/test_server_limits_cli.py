"""The limit and timeout flags of ``mutls serve`` and ``mutls xsp``: parsed into one
ServerConfig, nonsense refused in one line naming the flag, and obeyed by a real server."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path

import pytest

from mutls.cli import serve, xsp
from mutls.errors import UsageError
from mutls.http import HTTPLimits
from mutls.server import Timeouts

from helpers import MutlsServer, run_mutls


def test_flags_reach_the_config() -> None:
    args = serve.build_parser().parse_args(
        [
            "app:x",
            *("--timeout-handshake", "2", "--timeout-header", "3", "--timeout-keep-alive", "4"),
            *("--timeout-graceful-shutdown", "5", "--app-timeout", "6.5", "--timeout-send", "8"),
            *("--max-connections", "7", "--max-header-size", "8k", "--max-headers", "9"),
            *("--max-body-size", "1M", "--threads", "3", "--thread-queue", "0"),
            *("--min-chunk-average", "64"),
        ]
    )
    config = serve.config_from_args(args, app="app:x")
    assert config.timeouts == Timeouts(
        handshake=2, header=3, keep_alive=4, graceful=5, app=6.5, send=8
    )
    assert config.limits == HTTPLimits(
        max_head_bytes=8192, max_headers=9, max_body_bytes=1 << 20, min_chunk_average=64
    )
    assert (config.max_connections, config.threads, config.queued_requests) == (7, 3, 0)


def test_defaults_are_the_configs_and_zero_turns_the_app_timeout_off() -> None:
    config = serve.config_from_args(xsp.build_parser().parse_args([]))
    assert config.timeouts == Timeouts() and config.limits == HTTPLimits()
    assert config.queued_requests == config.threads
    off = serve.config_from_args(xsp.build_parser().parse_args(["--app-timeout", "0"]))
    assert off.timeouts.app is None


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--timeout-handshake", "0"], "--timeout-handshake"),
        (["--timeout-header", "-1"], "--timeout-header"),
        (["--timeout-keep-alive", "nan"], "--timeout-keep-alive"),
        (["--timeout-graceful-shutdown", "inf"], "--timeout-graceful-shutdown"),
        (["--app-timeout", "-5"], "--app-timeout"),
        (["--timeout-send", "0"], "--timeout-send"),
        (["--max-connections", "0"], "--max-connections"),
        (["--max-header-size", "100"], "--max-header-size"),
        (["--max-headers", "0"], "--max-headers"),
        (["--max-body-size", "lots"], "--max-body-size"),
        (["--min-chunk-average", "-16"], "--min-chunk-average"),
        (["--threads", "0"], "--threads"),
        (["--thread-queue", "-1"], "--thread-queue"),
    ],
)
def test_nonsense_is_refused_naming_the_flag(argv: list[str], flag: str) -> None:
    with pytest.raises(UsageError, match=flag):
        serve.config_from_args(serve.build_parser().parse_args(argv))


def test_refusal_from_the_command_line_is_one_line() -> None:
    result = run_mutls("xsp", "--timeout-keep-alive", "-1", "--nonstop")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["mutls xsp: --timeout-keep-alive -1.0: must be a positive number of seconds"]


APP = """
import time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(3)
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def test_a_real_server_obeys_the_flags(tmp_path: Path) -> None:
    (tmp_path / "limited.py").write_text(APP)
    argv = ["serve", "limited:app", "--app-dir", str(tmp_path), "--max-header-size", "1k"]
    argv += ["--max-body-size", "100", "--timeout-keep-alive", "0.5", "--app-timeout", "0.5"]
    with MutlsServer(*argv, cwd=tmp_path) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/", headers={"X-Big": "x" * 2000})
            assert conn.getresponse().status == 431
            conn.close()
            conn.request("POST", "/", body=b"y" * 101)
            assert conn.getresponse().status == 413
            conn.close()
            conn.request("GET", "/slow")
            response = conn.getresponse()
            assert response.status == 504
            response.read()
            conn.request("GET", "/")
            assert conn.getresponse().read() == b"ok"  # same connection, still served
        finally:
            conn.close()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.settimeout(5)  # idle past --timeout-keep-alive 0.5: closed by the server
            assert sock.recv(1) == b""


def test_help_lists_every_flag() -> None:
    for command in (serve, xsp):
        text = command.build_parser().format_help()
        for flag in [
            "--timeout-handshake", "--timeout-header", "--timeout-keep-alive",
            "--timeout-graceful-shutdown", "--app-timeout", "--max-connections",
            "--max-header-size", "--max-headers", "--max-body-size", "--min-chunk-average",
        ]:  # fmt: skip
            assert flag in text, (command.__name__, flag)
    assert "--threads" in serve.build_parser().format_help()
