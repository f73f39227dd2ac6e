"""Behind proxies, over real sockets: the PROXY protocol header (v1, v2, LOCAL) read before
mutls's own TLS handshake, from trusted peers only, and through a real HAProxy (send-proxy,
send-proxy-v2); X-Forwarded-For/-Proto and Forwarded believed from trusted peers only, over
TLS and plain HTTP, for ASGI and WSGI apps.

Trusted peers connect from 127.0.0.1, anyone else from 127.0.0.2 (both loopback on Linux).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mutls import pki
from mutls.http.proxy_protocol import v1_header, v2_header
from mutls.server import ServerConfig, Timeouts, serve_in_thread
from mutls.tls import ClientCertMode, VerifyPolicy

from helpers import PKIFiles, free_port, read_until_close, stop_process, wait_for_port

TIMEOUTS = Timeouts(handshake=2.0, header=2.0, keep_alive=2.0, graceful=2.0)
UNTRUSTED = "127.0.0.2"


async def whoami(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The client, scheme and client certificate the app sees, as JSON."""
    assert scope["type"] == "http"
    tls = scope["extensions"].get("tls") or {}
    body = json.dumps(
        {
            "client": list(scope["client"]) if scope["client"] else None,
            "scheme": scope["scheme"],
            "cert": tls.get("client_cert_name"),
            "xff": dict(scope["headers"]).get(b"x-forwarded-for", b"").decode(),
        }
    ).encode()
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_whoami(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps(
        {
            "client": [environ["REMOTE_ADDR"], int(environ["REMOTE_PORT"])],
            "scheme": environ["wsgi.url_scheme"],
        }
    ).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def tls_config(test_pki: PKIFiles, **changes: Any) -> ServerConfig:
    return ServerConfig(
        port=0,
        identity=test_pki.identities["server"],
        client_cert=ClientCertMode.REQUIRE,
        verify=VerifyPolicy.STRICT,
        trust=pki.TrustMaterial(anchors=(test_pki.ca.certificate,)),
        app=whoami,
        timeouts=TIMEOUTS,
        trusted_proxies=("127.0.0.1",),
        **changes,
    )


def client_context(test_pki: PKIFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
    context.load_cert_chain(test_pki.cert("poupou"), test_pki.key("poupou"))
    return context


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def get(sock: socket.socket, headers: str = "") -> dict[str, Any]:
    """One request; the app's JSON."""
    sock.sendall(
        f"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n".encode()
    )
    data, _ = read_until_close(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    result: dict[str, Any] = json.loads(body)
    return result


def tls_get(
    test_pki: PKIFiles, port: int, before: bytes = b"", headers: str = "", source: str = "127.0.0.1"
) -> dict[str, Any]:
    """Send ``before`` (a PROXY header), then a TLS handshake with poupou's certificate."""
    raw = connect(port, source)
    raw.sendall(before)
    with client_context(test_pki).wrap_socket(raw, server_hostname="localhost") as sock:
        return get(sock, headers)


@pytest.fixture(scope="module")
def proxy_protocol_port(test_pki: PKIFiles) -> Iterator[int]:
    with serve_in_thread(tls_config(test_pki, proxy_protocol=True)) as running:
        yield running.ports[0]


@pytest.mark.parametrize("make", [v1_header, v2_header])
def test_proxy_header_then_mutls_own_handshake(
    test_pki: PKIFiles, proxy_protocol_port: int, make: Any
) -> None:
    seen = tls_get(
        test_pki, proxy_protocol_port, make(("203.0.113.7", 40000), ("198.51.100.1", 443))
    )
    assert seen["client"] == ["203.0.113.7", 40000]
    assert seen["scheme"] == "https" and seen["cert"] == "CN=poupou"


def test_local_command_keeps_the_peer(test_pki: PKIFiles, proxy_protocol_port: int) -> None:
    seen = tls_get(test_pki, proxy_protocol_port, v2_header(None))
    assert seen["client"][0] == "127.0.0.1" and seen["cert"] == "CN=poupou"


def closed_at_once(sock: socket.socket) -> bool:
    sock.settimeout(10)
    data, closed = read_until_close(sock)
    return closed and data == b""


def test_untrusted_peer_is_refused(
    test_pki: PKIFiles, proxy_protocol_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    for before in (v1_header(("203.0.113.7", 1), ("198.51.100.1", 443)), b""):
        with connect(proxy_protocol_port, UNTRUSTED) as sock:
            sock.sendall(before or b"\x16\x03\x01\x00\x00")
            assert closed_at_once(sock)
    assert "127.0.0.2" in caplog.text and "not a --trusted-proxy" in caplog.text


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS without the header
        b"PROXY TCP4 203.0.113.7 198.51.100.1 1 443\n",
        b"PROXY TCP4 999.0.0.1 198.51.100.1 1 443\r\n",
    ],
)
def test_bad_header_closes(
    proxy_protocol_port: int, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mutls")
    with connect(proxy_protocol_port) as sock:
        sock.sendall(data)
        assert closed_at_once(sock)
    assert "bad PROXY header from 127.0.0.1" in caplog.text


def test_header_cut_short_times_out(proxy_protocol_port: int) -> None:
    with connect(proxy_protocol_port) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7 ")
        assert closed_at_once(sock)  # --timeout-handshake (2 s here) bounds the wait


def test_plain_http_with_proxy_protocol(test_pki: PKIFiles) -> None:
    config = ServerConfig(
        port=0, app=whoami, timeouts=TIMEOUTS, trusted_proxies=("127.0.0.1",), proxy_protocol=True
    )
    with serve_in_thread(config) as running, connect(running.ports[0]) as sock:
        sock.sendall(v1_header(("2001:db8::7", 5), ("2001:db8::1", 80)))
        seen = get(sock)
    assert seen["client"] == ["2001:db8::7", 5] and seen["scheme"] == "http"


XFF = "X-Forwarded-For: 198.51.100.9, 203.0.113.7\r\nX-Forwarded-Proto: http\r\n"


def test_proxy_headers_over_tls(test_pki: PKIFiles) -> None:
    """A re-encrypting proxy (nginx's proxy_pass https://, with its own client certificate):
    the app sees the client it reports, from a trusted peer only; the headers reach the app
    either way."""
    with serve_in_thread(tls_config(test_pki, proxy_headers=True)) as running:
        port = running.ports[0]
        seen = tls_get(test_pki, port, headers=XFF)
        assert (seen["client"], seen["scheme"]) == (["203.0.113.7", 0], "http")
        assert seen["cert"] == "CN=poupou"
        seen = tls_get(test_pki, port, headers=XFF, source=UNTRUSTED)
        assert (seen["client"][0], seen["scheme"]) == (UNTRUSTED, "https")
        assert seen["xff"] == "198.51.100.9, 203.0.113.7"


def test_access_line_names_the_relayed_client(
    test_pki: PKIFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """The access log names the client the app saw (as nginx's real_ip and uvicorn do), not
    the proxy's socket address."""
    caplog.set_level(logging.INFO, logger="mutls.access")
    with serve_in_thread(tls_config(test_pki, proxy_headers=True)) as running:
        tls_get(test_pki, running.ports[0], headers=XFF)
    lines = [r.getMessage() for r in caplog.records if r.name == "mutls.access"]
    assert len(lines) == 1 and lines[0].startswith("203.0.113.7:0 "), lines


def test_proxy_headers_for_wsgi_on_keep_alive() -> None:
    """Each request of a kept-alive proxy connection carries its own client."""
    config = ServerConfig(
        port=0,
        app=wsgi_whoami,
        timeouts=TIMEOUTS,
        trusted_proxies=("127.0.0.0/8",),
        proxy_headers=True,
    )
    with serve_in_thread(config) as running, connect(running.ports[0]) as sock:
        seen = []
        for headers in (
            "Forwarded: for=192.0.2.1;proto=https\r\n",
            "",
            "X-Forwarded-For: 192.0.2.2\r\n",
        ):
            sock.sendall(f"GET / HTTP/1.1\r\nHost: a\r\n{headers}\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(4096)
            head, _, body = head.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += sock.recv(4096)
            seen.append(json.loads(body))
    assert seen[0] == {"client": ["192.0.2.1", 0], "scheme": "https"}
    assert seen[1]["client"][0] == "127.0.0.1" and seen[1]["scheme"] == "http"
    assert seen[2] == {"client": ["192.0.2.2", 0], "scheme": "http"}


# -- through a real HAProxy ----------------------------------------------------------------------

HAPROXY = """
global
    maxconn 64
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend v1
    bind 127.0.0.1:{v1}
    default_backend mutls_v1
frontend v2
    bind 127.0.0.1:{v2}
    default_backend mutls_v2
backend mutls_v1
    server s1 127.0.0.1:{mutls} send-proxy
backend mutls_v2
    server s1 127.0.0.1:{mutls} send-proxy-v2
"""


@contextlib.contextmanager
def haproxy(directory: Path, mutls_port: int) -> Iterator[dict[str, int]]:
    ports = {"v1": free_port(), "v2": free_port(), "mutls": mutls_port}
    config = directory / "haproxy.cfg"
    config.write_text(HAPROXY.format(**ports))
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for name in ("v1", "v2"):
            try:
                wait_for_port(ports[name])
            except TimeoutError:
                process.kill()
                _, err = process.communicate(timeout=10)
                pytest.fail(f"haproxy did not start: {err.decode()}")
        yield ports
    finally:
        stop_process(process)


@pytest.mark.needs("haproxy", "curl")
def test_through_haproxy(test_pki: PKIFiles, proxy_protocol_port: int, tmp_path: Path) -> None:
    """curl (from 127.0.0.2) -> HAProxy in TCP mode (send-proxy / send-proxy-v2) -> mutls,
    which terminates TLS, judges poupou's certificate, and names the client HAProxy saw."""
    with haproxy(tmp_path, proxy_protocol_port) as ports:
        for version in ("v1", "v2"):
            done = subprocess.run(
                [
                    *("curl", "-sS", "--max-time", "20", "--interface", UNTRUSTED),
                    *("--cacert", str(test_pki.ca_cert)),
                    *("--cert", str(test_pki.cert("poupou")), "--key", str(test_pki.key("poupou"))),
                    f"https://localhost:{ports[version]}/",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, done.stderr
            seen = json.loads(done.stdout)
            assert seen["client"][0] == UNTRUSTED, (version, seen)
            assert seen["scheme"] == "https" and seen["cert"] == "CN=poupou"


def test_disagreeing_spellings_are_not_believed(caplog: pytest.LogCaptureFixture) -> None:
    """A client's Forwarded passed on by a proxy that sets X-Forwarded-For: neither is believed
    (the app sees the proxy), and the operator is told once."""
    caplog.set_level(logging.WARNING, logger="mutls")
    config = ServerConfig(
        port=0, app=whoami, timeouts=TIMEOUTS, trusted_proxies=("127.0.0.1",), proxy_headers=True
    )
    with serve_in_thread(config) as running, connect(running.ports[0]) as sock:
        seen = get(sock, "Forwarded: for=198.51.100.66\r\nX-Forwarded-For: 203.0.113.7\r\n")
    assert seen["client"][0] == "127.0.0.1"
    assert "proxy headers from 127.0.0.1" in caplog.text and "disagree" in caplog.text


def test_closing_midway_is_logged_a_bare_connect_is_not(
    proxy_protocol_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    """A balancer's TCP health check (connect, close) is not worth a line; a header cut short
    is."""
    caplog.set_level(logging.INFO, logger="mutls")
    with connect(proxy_protocol_port) as sock:
        sock.shutdown(socket.SHUT_WR)
        assert closed_at_once(sock)
    assert "PROXY" not in caplog.text
    with connect(proxy_protocol_port) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.7")
        sock.shutdown(socket.SHUT_WR)
        assert closed_at_once(sock)
    assert "bad PROXY header from 127.0.0.1" in caplog.text
    assert "closed before the end of the PROXY header" in caplog.text
