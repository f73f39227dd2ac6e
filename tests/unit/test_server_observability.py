"""The pieces under the logs and metrics, fed directly: escaping in access lines (text and
JSON), the per-peer rate limit of handshake failures and its bounded memory, and the shared
metrics table's fold (a dead worker's counts stay, its open connections do not) and labels."""

from __future__ import annotations

import json
import logging

import pytest

from mutls.apps.facts import connection_facts
from mutls.http import Request
from mutls.server.log import (
    AccessEntry,
    HandshakeFailures,
    HeaderNotes,
    JSONFormatter,
    TextFormatter,
)
from mutls.server.metrics import OTHER, MetricsTable, exposition_lines
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.connection import TLSError
from mutls.tls.info import TLSInfo


def request(target: bytes, method: str = "GET") -> Request:
    return Request(method, target, target, target.decode("latin-1"), b"", "1.1", [], True)


def record(message: object) -> logging.LogRecord:
    return logging.LogRecord("mutls.access", logging.INFO, __file__, 1, message, None, None)


def tls_facts(cert: ClientCertificate, *, resumed: bool = False):  # type: ignore[no-untyped-def]
    info = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", 0x1301, cert, resumed=resumed)
    return connection_facts(("10.0.0.1", 5000), ("127.0.0.1", 443), info)


def test_access_line_escapes_what_the_client_chose() -> None:
    cert = ClientCertificate(present=True, valid=False, error="bad\nname\x1b[2J")
    entry = AccessEntry(
        ("10.0.0.1", 5000), tls_facts(cert), request(b'/a"b\x1b[31m'), 403, 12, 0.0015
    )
    line = TextFormatter().format(record(entry))
    assert "\n" not in line and "\x1b" not in line
    assert '"GET /a\\"b\\x1b[31m HTTP/1.1" 403 12 1.500ms TLSv1.3 resumed=no' in line
    assert "verify=FAILED:bad\\nname\\x1b[2J" in line
    fields = json.loads(JSONFormatter().format(record(entry)))
    assert fields["target"] == '/a"b\\x1b[31m' and fields["status"] == 403
    assert fields["client_verify"] == "FAILED:bad\\nname\\x1b[2J"
    assert fields["resumed"] is False and fields["duration"] == 0.0015


def test_plain_http_access_line_has_dashes() -> None:
    entry = AccessEntry(("::1", 80), connection_facts(("::1", 80), None), request(b"/"), 200, 2, 0)
    line = str(entry)
    assert line.startswith('[::1]:80 "GET / HTTP/1.1" 200 2 0.000ms - resumed=- subject=- ')
    assert json.loads(JSONFormatter().format(record(entry)))["tls_version"] is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_handshake_failures_one_line_per_peer_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    failures = HandshakeFailures(interval=10, max_peers=3, clock=clock)
    error = TLSError("wrong version number", alert="protocol_version")
    with caplog.at_level(logging.INFO, logger="mutls.handshake"):
        for _ in range(50):
            failures.report(("192.0.2.7", 1234), error)
        failures.report(("192.0.2.8", 1), error)  # another peer: its own line
        clock.now += 10.5
        failures.report(("192.0.2.7", 999), error)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0] == (
        "TLS handshake with 192.0.2.7:1234 failed: wrong version number "
        "(alert sent: protocol_version, received: none)"
    )
    assert lines[2].endswith("; 49 more from 192.0.2.7 not logged in the last 10 s")
    assert caplog.records[2].mutls["suppressed"] == 49  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="mutls.handshake"):
        for i in range(100):  # a flood of addresses: memory stays bounded
            failures.report((f"198.51.100.{i}", 1), error)
    assert len(failures._peers) == 3


def test_metrics_fold_keeps_counts_and_closes_connections() -> None:
    table = MetricsTable(slots=2)
    slot = table.claim()
    assert slot is not None
    table.bind(4242, slot)
    row = table.row(slot)
    row.set_ready(True)
    for _ in range(3):
        row.connection_opened()
    row.connection_closed()
    row.request(200, 0.003)
    row.request(0, 0.5)  # no answer began: not a request answered
    row.handshake(ClientCertificate(present=True, valid=False, error="no such reason"), True)
    row.handshake_failed("certificate_required")
    _totals, ready = table.totals()
    assert ready == 1
    before = "".join(exposition_lines(table, None))
    assert "mutls_open_connections 2\n" in before
    assert f'mutls_handshakes_total{{outcome="invalid",reason="{OTHER}"}} 1\n' in before
    assert 'mutls_handshakes_total{outcome="failed",reason="certificate_required"} 1\n' in before
    assert 'mutls_request_duration_seconds_bucket{le="0.0025"} 0\n' in before
    assert 'mutls_request_duration_seconds_bucket{le="0.005"} 1\n' in before
    assert "mutls_request_duration_seconds_count 1\n" in before
    table.exited(4242)  # the worker died with two connections open
    after = "".join(exposition_lines(table, None))
    assert "mutls_open_connections 0\n" in after and "mutls_workers_ready 0\n" in after
    for line in before.splitlines():
        if line.startswith(("mutls_requests", "mutls_handshakes", "mutls_connections_total")):
            assert line in after.splitlines()
    assert table.claim() is not None and table.claim() is not None and table.claim() is None


def test_header_notes_log_each_kind_once_per_connection(caplog: pytest.LogCaptureFixture) -> None:
    """A dropped ``_`` name and removed certificate headers are each logged once per
    connection, whichever came first (HTTP/2 once let the first silence the second)."""
    caplog.set_level(logging.INFO, logger="mutls")
    plain = Request("GET", b"/", b"/", "/", b"", "2", [], True)
    carrying = Request(
        "GET", b"/", b"/", "/", b"", "2", [], True, certificate_headers=[(b"client-cert", b":x:")]
    )
    notes = HeaderNotes()
    client = ("127.0.0.1", 5)
    for _ in range(3):
        notes.note(client, b"x_client_cert", plain, None)
        notes.note(client, None, carrying, None)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("names with '_' are dropped" in m for m in messages) == 1, messages
    assert sum("client-certificate header(s) client-cert" in m for m in messages) == 1, messages
