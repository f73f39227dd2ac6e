"""``--metrics-address``: Prometheus's text format on a plain-HTTP listener of its own, parsed
with prometheus_client's parser, from real servers: totals that add up across ``--workers 2``
however the requests were spread, counters that do not go back when a worker is killed and
replaced, the handshake outcomes and reasons, the certificate and CRL dates, the trust
generation after SIGHUP, and ``/health`` that needs no client certificate."""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import (
    PASSWORD,
    PKIFiles,
    curl,
    free_port,
    mutls_process,
    run_mutls,
    wait_for_text,
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, by (name, labels); the format is checked by the parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = answer.read().decode("utf-8")
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(port: int, name: str, expected: float, timeout: float = 20, **labels: str) -> Samples:
    """Scrape until ``name{labels}`` is ``expected`` (bounded); the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        if value(samples, name, **labels) == expected:
            return samples
        assert time.monotonic() < deadline, (name, labels, value(samples, name, **labels))
        time.sleep(0.05)


def with_cert(test_pki: PKIFiles, name: str) -> list[str]:
    cert, key = str(test_pki.cert(name)), str(test_pki.key(name))
    return ["--cacert", str(test_pki.ca_cert), "--cert", cert, "--key", key]


def children_of(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_two_workers_add_up_and_never_go_back(test_pki: PKIFiles, tmp_path: Path) -> None:
    port, metrics_port, log = free_port(), free_port(), tmp_path / "w.log"
    args = ["serve", "--workers", "2", "--port", str(port), "--p12", str(test_pki.p12("server"))]
    args += ["--pkpwd", PASSWORD, "--client-cert", "optional", "--client-ca", str(test_pki.ca_cert)]
    args += ["--metrics-address", f"127.0.0.1:{metrics_port}"]
    url = f"https://localhost:{port}/cctest.aspx"
    with mutls_process(args, tmp_path, log) as supervisor:
        wait_for(metrics_port, "mutls_workers_ready", 2)
        for _ in range(20):
            assert "your certificate is valid" in curl(url, *with_cert(test_pki, "poupou")).stdout
        samples = wait_for(metrics_port, "mutls_requests_total", 20, status="200")
        samples = wait_for(metrics_port, "mutls_open_connections", 0)
        assert value(samples, "mutls_handshakes_total", outcome="valid", reason="") == 20
        assert value(samples, "mutls_connections_total") == 20
        assert value(samples, "mutls_request_duration_seconds_count") == 20
        assert value(samples, "mutls_request_duration_seconds_bucket", le="+Inf") == 20
        assert value(samples, "mutls_request_duration_seconds_sum") > 0
        # the worker that served most is killed (as the OOM killer would): its counts stay
        wait_for_text(log, " INFO mutls.access: ", 20)
        served = collections.Counter(re.findall(r" pid=(\d+)$", log.read_text(), re.M))
        assert sum(served.values()) == 20
        victim = int(served.most_common(1)[0][0])
        assert victim in children_of(supervisor.pid)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while victim in children_of(supervisor.pid) or len(children_of(supervisor.pid)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        samples = wait_for(metrics_port, "mutls_workers_ready", 2)
        assert value(samples, "mutls_requests_total", status="200") == 20
        assert value(samples, "mutls_handshakes_total", outcome="valid", reason="") == 20
        assert value(samples, "mutls_connections_total") == 20
        assert value(samples, "mutls_request_duration_seconds_count") == 20
        assert value(samples, "mutls_open_connections") == 0
        for _ in range(5):
            assert "your certificate is valid" in curl(url, *with_cert(test_pki, "poupou")).stdout
        samples = wait_for(metrics_port, "mutls_requests_total", 25, status="200")
        assert value(samples, "mutls_connections_total") == 25
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0
    assert f"mutls: metrics on http://127.0.0.1:{metrics_port}/metrics" in log.read_text()


def resumed_pair(test_pki: PKIFiles, port: int) -> None:
    """Two requests by one client, the second on a resumed session."""
    context = ssl.create_default_context(cafile=str(test_pki.ca_cert))
    context.load_cert_chain(test_pki.cert("poupou"), test_pki.key("poupou"))
    session = None
    for want_resumed in (False, True):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                while tls.recv(65536):
                    pass
                assert tls.session_reused is want_resumed
                session = tls.session


def test_metrics_and_health_on_their_own_plain_listener(test_pki: PKIFiles, tmp_path: Path) -> None:
    port, metrics_port, log = free_port(), free_port(), tmp_path / "one.log"
    args = ["serve", "--port", str(port), "--cert", str(test_pki.cert("server"))]
    args += ["--key", str(test_pki.key("server")), "--client-cert", "require"]
    args += ["--client-ca", str(test_pki.ca_cert), "--crl", str(test_pki.crl_path)]
    args += ["--metrics-address", f"127.0.0.1:{metrics_port}"]
    base = f"http://127.0.0.1:{metrics_port}"
    with mutls_process(args, tmp_path, log) as process:
        # a load balancer's check: plain HTTP, no certificate
        health = curl(f"{base}/health", "-w", " %{http_code}")
        assert health.stdout == "ok\n 200"
        # the listener speaks no TLS, and the TLS port serves no metrics
        assert curl(f"https://127.0.0.1:{metrics_port}/metrics", "-k").returncode != 0
        tls_port = curl(f"https://localhost:{port}/metrics", *with_cert(test_pki, "poupou"))
        assert "mutls_requests_total" not in tls_port.stdout
        anonymous = curl(f"https://localhost:{port}/metrics", "--cacert", str(test_pki.ca_cert))
        assert "client certificate required" in anonymous.stdout
        assert curl(f"{base}/other", "-w", " %{http_code}").stdout.endswith(" 404")
        assert curl(f"{base}/metrics", "-X", "POST", "-w", " %{http_code}").stdout.endswith(" 405")
        # outcomes: valid, invalid with its reason, none, failed with the alert; resumption
        assert "valid" in curl(f"https://localhost:{port}/", *with_cert(test_pki, "expired")).stdout
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"\x16\x03\x01\x00\x05hello")
                assert sock.recv(100).startswith(b"\x15\x03")
        resumed_pair(test_pki, port)
        # a client that does not trust the server's certificate says so with its alert
        untrusting = ssl.create_default_context(cafile=str(test_pki.other_ca_cert))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                untrusting.wrap_socket(raw, server_hostname="localhost")
        samples = wait_for(metrics_port, "mutls_requests_total", 2, status="403")
        samples = wait_for(
            metrics_port,
            "mutls_handshakes_total",
            1,
            outcome="failed",
            reason="received_unknown_ca",
        )
        outcomes = {
            (dict(labels)["outcome"], dict(labels)["reason"]): v
            for (name, labels), v in samples.items()
            if name == "mutls_handshakes_total"
        }
        assert outcomes == {
            ("valid", ""): 3.0,  # /metrics with poupou, then the resumed pair
            ("none", ""): 1.0,
            ("invalid", "certificate has expired"): 1.0,
            ("failed", "unexpected_message"): 3.0,
            ("failed", "received_unknown_ca"): 1.0,
        }
        assert value(samples, "mutls_tls_resumptions_total") == 1
        assert value(samples, "mutls_requests_total", status="404") == 1  # /metrics, test page
        assert value(samples, "mutls_requests_total", status="200") == 2
        # the dates an operator alerts on
        not_after = test_pki.identities["server"].certificate.not_valid_after_utc.timestamp()
        name = "mutls_server_certificate_not_after_timestamp_seconds"
        assert value(samples, name, subject="CN=localhost") == int(not_after)
        crl = test_pki.ca.crl([])
        assert crl.next_update_utc is not None
        issuer = test_pki.ca.certificate.subject.rfc4514_string()
        due = value(samples, "mutls_crl_next_update_timestamp_seconds", issuer=issuer)
        assert abs(due - crl.next_update_utc.timestamp()) < 600  # the CRL of the fixture
        assert value(samples, "mutls_trust_generation") == 1
        process.send_signal(signal.SIGHUP)
        wait_for(metrics_port, "mutls_trust_generation", 2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    with pytest.raises(urllib.error.URLError):
        scrape(metrics_port)  # gone with the server


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("SAME", "that is the server's own port; metrics are plain HTTP on a port of their own"),
        ("9100", "--metrics-address 9100: give HOST:PORT, e.g. 127.0.0.1:9100"),
        ("127.0.0.1:http", "--metrics-address 127.0.0.1:http: give HOST:PORT"),
        ("192.0.2.1:9100", "cannot listen on --metrics-address 192.0.2.1:9100: "),
    ],
)
def test_bad_metrics_addresses(tmp_path: Path, address: str, said: str) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}" if address == "SAME" else address
    done = run_mutls("serve", "--port", str(port), "--metrics-address", address, cwd=tmp_path)
    assert done.returncode != 0 and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_server_on_a_thread_serves_metrics_too() -> None:
    from mutls.server import ServerConfig, serve_in_thread

    metrics_port = free_port()
    config = ServerConfig(port=0, metrics_address=f"127.0.0.1:{metrics_port}")
    with serve_in_thread(config) as running:
        url = f"http://127.0.0.1:{running.ports[0]}/cctest.aspx"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert b"insecure" in answer.read()
        samples = wait_for(metrics_port, "mutls_requests_total", 1, status="200")
        assert value(samples, "mutls_workers_ready") == 1
        assert ("mutls_tls_resumptions_total", frozenset()) in samples
        # plain HTTP: no certificate date to show
        assert not any(name.startswith("mutls_server_cert") for name, _ in samples)
        # clients that never finish their request hold no one else up
        idle = [socket.create_connection(("127.0.0.1", metrics_port)) for _ in range(40)]
        idle[0].sendall(b"GET /metrics HTTP/1.1\r\n")
        assert curl(f"http://127.0.0.1:{metrics_port}/health").stdout == "ok\n"
        for sock in idle:
            sock.close()
    with pytest.raises(urllib.error.URLError):
        scrape(metrics_port)


async def refuses_to_start(scope: dict[str, object], receive: Any, send: Any) -> None:
    """An ASGI app whose lifespan startup fails."""
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})


def test_a_server_that_fails_to_start_closes_its_metrics_listener() -> None:
    from mutls.errors import MutlsError
    from mutls.server import ServerConfig, serve_in_thread

    metrics_port = free_port()
    config = ServerConfig(port=0, app=refuses_to_start, metrics_address=f"127.0.0.1:{metrics_port}")
    with pytest.raises(MutlsError, match="no database"), serve_in_thread(config):
        pass
    with pytest.raises(urllib.error.URLError):
        scrape(metrics_port)
    # the next server of this process may open one again
    with serve_in_thread(config.with_changes(app=None)):
        assert curl(f"http://127.0.0.1:{metrics_port}/health").stdout == "ok\n"


def test_http2_streams_are_logged_and_counted_like_http11(
    test_pki: PKIFiles, tmp_path: Path
) -> None:
    """Requests over HTTP/2 get the same access line and the same counts as over HTTP/1.1;
    a connection handed to HTTP/2 after its handshake is one open connection, closed once."""
    port, metrics_port, log = free_port(), free_port(), tmp_path / "h2.log"
    args = ["serve", "--port", str(port), "--p12", str(test_pki.p12("server"))]
    args += ["--pkpwd", PASSWORD, "--client-cert", "optional", "--client-ca", str(test_pki.ca_cert)]
    args += ["--metrics-address", f"127.0.0.1:{metrics_port}"]
    url = f"https://localhost:{port}/cctest.aspx"
    with mutls_process(args, tmp_path, log):
        for version in ("--http2", "--http1.1", "--http2"):
            answer = curl(url, version, *with_cert(test_pki, "poupou"), url)  # two per connection
            assert answer.stdout.count("your certificate is valid") == 2, answer.stderr
        samples = wait_for(metrics_port, "mutls_requests_total", 6, status="200")
        samples = wait_for(metrics_port, "mutls_open_connections", 0)
        assert value(samples, "mutls_connections_total") == 3
        assert value(samples, "mutls_request_duration_seconds_count") == 6
        wait_for_text(log, " INFO mutls.access: ", 6)
    lines = [line for line in log.read_text().splitlines() if " mutls.access: " in line]
    assert sum('"GET /cctest.aspx HTTP/2"' in line for line in lines) == 4, lines
    assert sum('"GET /cctest.aspx HTTP/1.1"' in line for line in lines) == 2, lines
    assert all('subject="CN=poupou" verify=SUCCESS' in line for line in lines), lines
