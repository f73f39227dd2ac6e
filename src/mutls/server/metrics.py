"""Prometheus metrics, summed across workers, at a price of an integer add per event.

Why not prometheus_client's multiprocess mode: it keeps one file pair per process id in
``PROMETHEUS_MULTIPROC_DIR`` (which must be set before the library is imported and wiped at each
start), keeps the files of every dead process so that counters do not go back, and reads all of
them at each scrape; a server that forks a new generation of workers on every reload grows that
folder, and the scrape time, without bound (prometheus/client_python issues 204, 367, 443). Its
increments also take a lock and pack a float into a file mapping: recording one request (a
labelled counter and a histogram) took 5 to 7 times as long as :meth:`MetricsRow.request`
(11-13 µs against 1.5-2.4 µs, one run on a loaded machine).

So: the process that listens for ``/metrics`` (the supervisor, or the single serving process)
maps one anonymous shared block before it forks, laid out as fixed integer cells: one row per
worker slot and a *retired* row. A worker adds into its own row only (no lock: one writer per
row). When a worker exits the supervisor folds its row into the retired row and frees the slot
(under the lock the scrape takes), so a counter never goes back when a worker dies, and memory
stays what it was at start however many generations come and go. Labels are bounded by
construction: HTTP statuses 100-599, OpenSSL's verify reasons as they were at start (any other
text counts as ``other``), TLS alert names. The text exposition format is written here.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mutls.errors import MutlsError, UsageError
from mutls.server.log import log

if TYPE_CHECKING:
    from mutls.server.config import ServerConfig
    from mutls.server.metrics_listener import MetricsService
    from mutls.tls.client_certificate import ClientCertificate
    from mutls.tls.context import ServerContext

#: the request duration histogram's upper bounds, in seconds (+Inf follows).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_FIRST, STATUS_LAST = 100, 599
OTHER = "other"
#: the content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: each family's HELP text.
HELP = {
    "mutls_handshakes_total": "TLS handshakes: completed ones by the verdict on the client "
    "certificate (outcome valid, invalid with the verify reason, none) and failed ones "
    "(outcome failed, reason: the alert sent).",
    "mutls_tls_resumptions_total": "Handshakes that resumed a session.",
    "mutls_connections_total": "Connections accepted.",
    "mutls_connections_held_total": "Connections of an address over its failure budget "
    "(--max-failures-per-source): held unread, then closed.",
    "mutls_open_connections": "Connections open now.",
    "mutls_requests_total": "Answered requests by HTTP status.",
    "mutls_request_duration_seconds": "Time from a request's head to the end of its answer.",
    "mutls_workers_ready": "Serving processes ready for requests.",
    "mutls_trust_generation": "The trust in force for client certificates: 1 at start, one "
    "more at each reload.",
    "mutls_server_certificate_not_after_timestamp_seconds": "When the server's certificate "
    "expires (unix time).",
    "mutls_crl_next_update_timestamp_seconds": "When each issuer's newest CRL is due to be "
    "replaced (unix time).",
}

# the cells of a row (int64 each)
_READY, _OPENED, _CLOSED, _RESUMED, _DURATION_US, _HELD = range(6)
_BUCKET = 6
_STATUS = _BUCKET + len(BUCKETS) + 1
_HANDSHAKE = _STATUS + STATUS_LAST - STATUS_FIRST + 1
#: cells before the rows: the trust generation.
_HEADER = 1


def verify_reasons() -> tuple[str, ...]:
    """The reasons a client certificate can fail for: OpenSSL's verify strings (as this
    OpenSSL words them) and mutls's own."""
    from mutls.tls.verify import DISALLOWED, UNPARSEABLE, verify_error_text

    texts = dict.fromkeys(verify_error_text(code) for code in range(1, 128))
    return (*texts, DISALLOWED, UNPARSEABLE)


def alert_names() -> tuple[str, ...]:
    """The TLS alerts a failed handshake may have sent."""
    from mutls.tls.alerts import ALERT_NAMES

    return tuple(dict.fromkeys(ALERT_NAMES.values()))


@dataclass(frozen=True)
class Layout:
    """Where each labelled counter lives in a row; fixed before any fork, so every process
    agrees."""

    handshakes: tuple[tuple[str, str], ...]
    index: dict[tuple[str, str], int]
    width: int

    @classmethod
    def make(cls) -> Layout:
        keys = [("valid", ""), ("none", "")]
        keys += [("invalid", reason) for reason in (*verify_reasons(), OTHER)]
        keys += [("failed", alert) for alert in (*alert_names(), "none", OTHER)]
        keys += [("failed", f"received_{alert}") for alert in alert_names()]
        index = {key: _HANDSHAKE + i for i, key in enumerate(keys)}
        return cls(tuple(keys), index, _HANDSHAKE + len(keys))


class MetricsRow:
    """One process's cells: what its connections and requests add to (no lock, one writer)."""

    __slots__ = ("_base", "_cells", "_layout")

    def __init__(self, cells: memoryview, base: int, layout: Layout) -> None:
        self._cells = cells
        self._base = base
        self._layout = layout

    def set_ready(self, ready: bool) -> None:
        """This process serves (``/health`` answers 200 while one does)."""
        self._cells[self._base + _READY] = int(ready)

    def connection_opened(self) -> None:
        """A connection was accepted."""
        self._cells[self._base + _OPENED] += 1

    def connection_closed(self) -> None:
        """An accepted connection is gone."""
        self._cells[self._base + _CLOSED] += 1

    def connection_held(self) -> None:
        """A connection of an address over its failure budget: held, then closed."""
        self._cells[self._base + _HELD] += 1

    def handshake(self, certificate: ClientCertificate, resumed: bool) -> None:
        """A completed handshake, by the verdict on the client's certificate."""
        if not certificate.present:
            key = ("none", "")
        elif certificate.valid:
            key = ("valid", "")
        else:
            key = ("invalid", certificate.error or OTHER)
        index = self._layout.index
        cell = index.get(key) or index[("invalid", OTHER)]
        self._cells[self._base + cell] += 1
        if resumed:
            self._cells[self._base + _RESUMED] += 1

    def handshake_failed(self, alert: str | None, received: str | None = None) -> None:
        """A handshake that did not complete, by the alert this side sent (or, when it sent
        none, the one the client sent: ``received_unknown_ca`` when it refused our
        certificate)."""
        index = self._layout.index
        reason = alert or (f"received_{received}" if received else "none")
        cell = index.get(("failed", reason)) or index[("failed", OTHER)]
        self._cells[self._base + cell] += 1

    def request(self, status: int, seconds: float) -> None:
        """An answered request: its status and how long it took (no status, as when the
        client left before an answer began: not counted, so the histogram's count is the sum
        of ``mutls_requests_total``)."""
        if not STATUS_FIRST <= status <= STATUS_LAST:
            return
        cells, base = self._cells, self._base
        cells[base + _STATUS + status - STATUS_FIRST] += 1
        cells[base + _BUCKET + bisect.bisect_left(BUCKETS, seconds)] += 1
        cells[base + _DURATION_US] += int(seconds * 1_000_000)


class MetricsTable:
    """The shared block: a header, ``slots`` worker rows and the retired row."""

    def __init__(self, slots: int) -> None:
        self.layout = Layout.make()
        self.slots = slots
        width = self.layout.width
        self._map = mmap.mmap(-1, 8 * (_HEADER + width * (slots + 1)))  # shared, anonymous
        self.cells = memoryview(self._map).cast("q")
        self.retired = slots  # the row index of the folded counters
        self.lock = threading.Lock()  # the fold against the scrape (both in this process)
        self._free = list(range(slots - 1, -1, -1))
        self._by_pid: dict[int, int] = {}

    def row(self, slot: int) -> MetricsRow:
        """The cells of ``slot``."""
        return MetricsRow(self.cells, _HEADER + slot * self.layout.width, self.layout)

    def claim(self) -> int | None:
        """A free slot for a worker about to be forked (``None``: all taken)."""
        return self._free.pop() if self._free else None

    def bind(self, pid: int, slot: int) -> None:
        """``slot`` is worker ``pid``'s."""
        self._by_pid[pid] = slot

    def release(self, slot: int) -> None:
        """Fold a slot whose process is gone into the retired row and free it: its counters
        stay counted, its open connections are closed, it is no longer ready."""
        width, cells = self.layout.width, self.cells
        base, retired = _HEADER + slot * width, _HEADER + self.retired * width
        with self.lock:
            cells[retired + _CLOSED] += cells[base + _OPENED]
            for cell in range(_OPENED, width):
                if cell != _CLOSED:
                    cells[retired + cell] += cells[base + cell]
            cells[base : base + width] = memoryview(bytes(8 * width)).cast("q")
        self._free.append(slot)

    def exited(self, pid: int) -> None:
        """Worker ``pid`` was reaped."""
        slot = self._by_pid.pop(pid, None)
        if slot is not None:
            self.release(slot)

    @property
    def trust_generation(self) -> int:
        return int(self.cells[0])

    @trust_generation.setter
    def trust_generation(self, value: int) -> None:
        self.cells[0] = value

    def totals(self) -> tuple[list[int], int]:
        """Every cell summed over the rows, and how many rows are ready."""
        width, cells = self.layout.width, self.cells
        totals = [0] * width
        ready = 0
        with self.lock:
            for row in range(self.slots + 1):
                base = _HEADER + row * width
                values = cells[base : base + width].tolist()
                ready += values[_READY] > 0
                totals = [a + b for a, b in zip(totals, values, strict=True)]
        return totals, ready


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str) -> str:
    return f"# HELP {name} {HELP[name]}\n# TYPE {name} {kind}\n"


def exposition_lines(table: MetricsTable, context: ServerContext | None) -> Iterator[str]:
    """The text format, family by family."""
    totals, ready = table.totals()
    layout = table.layout
    yield _family("mutls_handshakes_total", "counter")
    for key in layout.handshakes:
        value = totals[layout.index[key]]
        if value:
            labels = f'outcome="{key[0]}",reason="{_label(key[1])}"'
            yield f"mutls_handshakes_total{{{labels}}} {value}\n"
    yield _family("mutls_tls_resumptions_total", "counter")
    yield f"mutls_tls_resumptions_total {totals[_RESUMED]}\n"
    yield _family("mutls_connections_total", "counter")
    yield f"mutls_connections_total {totals[_OPENED]}\n"
    yield _family("mutls_connections_held_total", "counter")
    yield f"mutls_connections_held_total {totals[_HELD]}\n"
    yield _family("mutls_open_connections", "gauge")
    yield f"mutls_open_connections {totals[_OPENED] - totals[_CLOSED]}\n"
    yield _family("mutls_requests_total", "counter")
    for status in range(STATUS_FIRST, STATUS_LAST + 1):
        value = totals[_STATUS + status - STATUS_FIRST]
        if value:
            yield f'mutls_requests_total{{status="{status}"}} {value}\n'
    yield _family("mutls_request_duration_seconds", "histogram")
    cumulative = 0
    for i, bound in enumerate((*BUCKETS, None)):
        cumulative += totals[_BUCKET + i]
        le = "+Inf" if bound is None else repr(bound)
        yield f'mutls_request_duration_seconds_bucket{{le="{le}"}} {cumulative}\n'
    yield f"mutls_request_duration_seconds_sum {totals[_DURATION_US] / 1_000_000}\n"
    yield f"mutls_request_duration_seconds_count {cumulative}\n"
    yield _family("mutls_workers_ready", "gauge")
    yield f"mutls_workers_ready {ready}\n"
    yield _family("mutls_trust_generation", "gauge")
    yield f"mutls_trust_generation {table.trust_generation}\n"
    if context is None:
        return
    cert = context.config.identity.certificate
    yield _family("mutls_server_certificate_not_after_timestamp_seconds", "gauge")
    subject = _label(cert.subject.rfc4514_string())
    not_after = int(cert.not_valid_after_utc.timestamp())
    name = "mutls_server_certificate_not_after_timestamp_seconds"
    yield f'{name}{{subject="{subject}"}} {not_after}\n'
    yield _family("mutls_crl_next_update_timestamp_seconds", "gauge")
    latest: dict[str, float] = {}
    for crl in context.verifier.trust.crls:
        due = crl.next_update_utc
        if due is not None:
            issuer = crl.issuer.rfc4514_string()
            latest[issuer] = max(latest.get(issuer, 0.0), due.timestamp())
    for issuer, due_at in sorted(latest.items()):
        name = "mutls_crl_next_update_timestamp_seconds"
        yield f'{name}{{issuer="{_label(issuer)}"}} {int(due_at)}\n'


# -- the process-wide hooks (the supervisor's fork, a worker's row, the reload) -----------------

#: the listener of this process (the supervisor or the single serving process), if any.
_service: MetricsService | None = None
#: the row this process adds to (a worker's slot, or the single process's row 0).
_row: MetricsRow | None = None
#: this process is a worker forked by :func:`fork_worker` (its supervisor serves /metrics).
_in_worker = False


def start(
    config: ServerConfig, context: ServerContext | None, *, workers: int
) -> MetricsRow | None:
    """Open the table and the ``--metrics-address`` listener in this process; the row this
    process serves with (``workers`` 0: it forks workers instead, which get their rows from
    :func:`fork_worker`). ``None`` without ``--metrics-address``."""
    global _service, _row
    if config.metrics_address is None:
        return None
    if _service is not None:
        raise MutlsError("one --metrics-address per process: a metrics listener already runs")
    # Workers of a generation being drained overlap the next one, and crashes need a slot for
    # the replacement before the dead worker is reaped: room for four generations.
    from mutls.server.metrics_listener import MetricsService

    service = MetricsService(config, context, slots=max(1, 4 * workers + 4) if workers else 1)
    service.start()
    _service = service
    if not workers:
        _row = service.table.row(0)
        return _row
    return None


def stop() -> None:
    """Close this process's listener (at the end of serving)."""
    global _service, _row
    if _service is not None:
        _service.stop()
    _service = _row = None


def this_process_row() -> MetricsRow | None:
    """The row this process adds to, if metrics are on."""
    return _row


def row_for_server(
    config: ServerConfig, context: ServerContext | None
) -> tuple[MetricsRow | None, bool]:
    """(the row a starting server adds to, whether it started the listener itself): a
    worker's slot, or for a single process its own table and listener."""
    if _in_worker or config.metrics_address is None:
        return _row, False
    return start(config, context, workers=0), True


def fork_worker() -> int:
    """``os.fork()`` for a worker: the child gets a row of its own (when metrics are on)."""
    global _service, _row, _in_worker
    service = _service
    slot = service.table.claim() if service is not None else None
    if service is not None and slot is None:
        log.warning("metrics: no free worker slot; this worker's requests are not counted")
    try:
        pid = os.fork()
    except OSError:
        if service is not None and slot is not None:
            service.table.release(slot)
        raise
    if pid == 0:
        _in_worker = True
        if service is not None:
            with contextlib.suppress(OSError):
                service.sock.close()  # the supervisor's listener, not the worker's
            _service = None
            _row = service.table.row(slot) if slot is not None else None
        return 0
    if service is not None and slot is not None:
        service.table.bind(pid, slot)
    return pid


def worker_exited(pid: int) -> None:
    """Worker ``pid`` was reaped: its counts fold into the retired row, its slot is free."""
    if _service is not None:
        _service.table.exited(pid)


def set_trust_generation(generation: int) -> None:
    """The trust generation in force (``mutls_trust_generation``), set by whoever reloads."""
    if _service is not None:
        _service.table.trust_generation = generation


def trust_generation() -> int:
    """The trust generation in force, as ``/metrics`` shows it (0 without metrics)."""
    return _service.table.trust_generation if _service is not None else 0


def serving(context: ServerContext | None) -> None:
    """The TLS context now in force (its certificate and CRLs are what ``/metrics`` shows)."""
    if _service is not None:
        _service.context = context


def metrics_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9100`` for IPv6) as (host, port); a UsageError otherwise."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(
            f"--metrics-address {text}: give HOST:PORT, e.g. 127.0.0.1:9100 or [::1]:9100"
        )
    return host, int(port)
