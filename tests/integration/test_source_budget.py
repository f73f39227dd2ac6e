"""``--max-failures-per-source``: an address whose connections keep failing has its new ones
held unread and closed (no handshake is made for it), while every other address is served as
before; the budget drains back; idle connections are not failures; 0 turns it off. A real
``mutls serve`` on 127.0.0.1, the offender on 127.0.0.2 (Linux's loopback answers for all of
127.0.0.0/8)."""

from __future__ import annotations

import re
import socket
import ssl
import time
import urllib.request
from pathlib import Path

from helpers import PASSWORD, PKIFiles, free_port, mutls_process, wait_for_text

OFFENDER = "127.0.0.2"


def server_args(test_pki: PKIFiles, port: int, budget: int, *extra: str) -> list[str]:
    args = ["serve", "--port", str(port), "--p12", str(test_pki.p12("server"))]
    args += ["--pkpwd", PASSWORD, "--client-cert", "require"]
    args += ["--client-ca", str(test_pki.ca_cert), "--max-failures-per-source", str(budget)]
    return args + list(extra)


def metric(port: int, name: str) -> int:
    """One unlabelled counter of ``/metrics`` (the format is checked in test_server_metrics)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = re.search(rf"^{name} (\d+)$", text, re.M)
    assert found, text
    return int(found.group(1))


def plain_http(port: int, source: str) -> bytes:
    """Plain HTTP on the TLS port (a failure): what the server answered."""
    with socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer


def mtls_get(test_pki: PKIFiles, raw: socket.socket) -> bytes:
    """An mTLS GET with a valid certificate over ``raw``: the answer (raises when the
    connection is closed before the handshake ends)."""
    context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
    context.load_cert_chain(test_pki.cert("poupou"), test_pki.key("poupou"))
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET /cctest.aspx HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer


def valid_request(test_pki: PKIFiles, port: int, source: str) -> bytes:
    """:func:`mtls_get` from the address ``source``."""
    with socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0)) as raw:
        return mtls_get(test_pki, raw)


def test_an_address_over_its_budget_is_held_and_others_are_served(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    port, metrics_port, log = free_port(), free_port(), tmp_path / "s.log"
    args = server_args(test_pki, port, 3, "--metrics-address", f"127.0.0.1:{metrics_port}")
    with mutls_process(args, tmp_path, log):
        for _ in range(4):  # one over the budget of 3
            assert plain_http(port, OFFENDER).startswith(b"HTTP/1.1 400 ")
        assert metric(metrics_port, "mutls_connections_held_total") == 0
        try:
            answer = valid_request(test_pki, port, OFFENDER)
        except (OSError, ssl.SSLError):
            answer = b""
        assert answer == b""  # held unread, then closed: not even a ServerHello
        assert metric(metrics_port, "mutls_connections_held_total") == 1
        assert metric(metrics_port, "mutls_connections_total") == 4  # the held one: not counted
        wait_for_text(log, f"{OFFENDER}:")
        assert "--max-failures-per-source" in log.read_text()
        # others are served as before, the valid client on 127.0.0.1 and a newcomer
        for source in ("127.0.0.1", "127.0.0.3"):
            assert b"your certificate is valid" in valid_request(test_pki, port, source)
        # the budget drains (3 per 10 s): the offender is served again, no restart needed
        deadline = time.monotonic() + 30
        while True:
            try:
                if b"your certificate is valid" in valid_request(test_pki, port, OFFENDER):
                    break
            except (OSError, ssl.SSLError):
                pass
            assert time.monotonic() < deadline, "the budget never drained"
            time.sleep(0.5)


def test_idle_connections_are_not_failures_and_zero_turns_it_off(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "s.log"
    with mutls_process(server_args(test_pki, port, 1, "--timeout-header", "0.5"), tmp_path, log):
        for _ in range(3):  # a handshake, then nothing: closed at the header timeout
            context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
            context.load_cert_chain(test_pki.cert("poupou"), test_pki.key("poupou"))
            with socket.create_connection(
                ("127.0.0.1", port), 10, source_address=(OFFENDER, 0)
            ) as raw:
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    assert tls.recv(4096) == b""  # closed by the server, idle
        assert b"your certificate is valid" in valid_request(test_pki, port, OFFENDER)
    port, log = free_port(), tmp_path / "off.log"
    with mutls_process(server_args(test_pki, port, 0), tmp_path, log):
        for _ in range(10):
            assert plain_http(port, OFFENDER).startswith(b"HTTP/1.1 400 ")
        assert b"your certificate is valid" in valid_request(test_pki, port, OFFENDER)
    assert "--max-failures-per-source" not in log.read_text()


def proxied(port: int, source: str) -> socket.socket:
    """A connection from 127.0.0.1 (the trusted balancer) relaying ``source``."""
    sock = socket.create_connection(("127.0.0.1", port), 10)
    sock.sendall(f"PROXY TCP4 {source} 127.0.0.1 40000 443\r\n".encode())
    return sock


def test_behind_a_proxy_protocol_balancer_the_relayed_client_is_held(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    """With --proxy-protocol the balancer is trusted (never held) and the budget is the
    relayed client's, held once its header is read, before any TLS."""
    port, metrics_port, log = free_port(), free_port(), tmp_path / "s.log"
    args = server_args(test_pki, port, 3, "--proxy-protocol", "--trusted-proxy", "127.0.0.1")
    args += ["--metrics-address", f"127.0.0.1:{metrics_port}"]

    def request(source: str) -> bytes:
        with proxied(port, source) as raw:
            try:
                return mtls_get(test_pki, raw)
            except (OSError, ssl.SSLError):
                return b""

    with mutls_process(args, tmp_path, log):
        for _ in range(4):  # plain HTTP through the balancer: a failure of 203.0.113.9
            with proxied(port, "203.0.113.9") as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 400 ")
        assert request("203.0.113.9") == b""  # held: no handshake for it
        assert metric(metrics_port, "mutls_connections_held_total") == 1
        assert b"your certificate is valid" in request("203.0.113.10")  # another client
        wait_for_text(log, "203.0.113.9:40000")
