"""Server logs: one format for every line, with attacker-chosen text made harmless.

A certificate's subject, a request path or a header is chosen by the client; printed raw, a
newline or an ANSI escape in it could forge log lines or rewrite a terminal. :func:`printable`
escapes every control character.

Loggers: ``mutls`` (the start-up lines), ``mutls.server`` (events), ``mutls.access`` (one INFO
line per answered request), ``mutls.handshake`` (failed TLS handshakes, rate-limited per peer).
Every line carries a UTC timestamp; ``--log-format json`` makes each one JSON object.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
import time
import tomllib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mutls.errors import UsageError

if TYPE_CHECKING:
    from mutls.apps.facts import ConnectionFacts
    from mutls.apps.forwarded_certificates import ForwardedCertificates
    from mutls.http.events import Request
    from mutls.server.protocol import ServerState
    from mutls.tls.connection import TLSError

log = logging.getLogger("mutls.server")
access_log = logging.getLogger("mutls.access")
#: the start-up lines (``mutls: serving on https://...``).
startup_log = logging.getLogger("mutls")
handshake_log = logging.getLogger("mutls.handshake")

#: ``--log-format`` values and ``--log-level`` names.
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"}
_ESCAPES |= {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}  # C1 controls (CSI 0x9B...)
_QUOTED = _ESCAPES | {ord('"'): '\\"'}


def printable(text: object) -> str:
    """``text`` with control characters (C0, DEL, C1) and backslashes escaped."""
    return str(text).translate(_ESCAPES)


def quoted(text: object) -> str:
    """``text`` made printable and put in double quotes (a quote inside is escaped)."""
    return '"' + str(text).translate(_QUOTED) + '"'


def peer(address: tuple[str, int] | None) -> str:
    """A client's address as logs show it (``[::1]:port`` for IPv6)."""
    if address is None:
        return "?"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# -- the access log -----------------------------------------------------------------------------


class AccessEntry:
    """One access line, rendered only when a handler formats it: as text (``str``) or as the
    JSON fields (:meth:`fields`). Attacker-chosen text is escaped in both."""

    __slots__ = ("bytes", "client", "duration", "facts", "request", "status")

    def __init__(
        self,
        client: tuple[str, int] | None,
        facts: ConnectionFacts | None,
        request: Request,
        status: int,
        sent: int,
        duration: float,
    ) -> None:
        self.client = client
        self.facts = facts
        self.request = request
        self.status = status
        self.bytes = sent
        self.duration = duration

    def fields(self) -> dict[str, Any]:
        """The line's fields: ``status``, ``method``, ``target`` and the rest."""
        request, facts = self.request, self.facts
        tls = facts.tls if facts is not None else None
        cert = tls.client_certificate if tls is not None else None
        return {
            "client": peer(self.client),
            "method": printable(request.method),
            "target": printable(request.target.decode("latin-1")),
            "http_version": request.http_version,
            "status": self.status,
            "bytes": self.bytes,
            "duration": round(self.duration, 6),
            "tls_version": tls.version if tls is not None else None,
            "resumed": tls.resumed if tls is not None else None,
            "client_subject": printable(cert.subject)
            if cert is not None and cert.present and cert.subject is not None
            else None,
            "client_verify": printable(cert.verify_status) if cert is not None else None,
        }

    def __str__(self) -> str:
        request, facts = self.request, self.facts
        tls = facts.tls if facts is not None else None
        cert = tls.client_certificate if tls is not None else None
        line = f"{request.method} {request.target.decode('latin-1')} HTTP/{request.http_version}"
        if tls is None:
            how = "- resumed=- subject=- verify=-"
        else:
            subject = cert.subject if cert is not None and cert.present else None
            how = (
                f"{tls.version} resumed={'yes' if tls.resumed else 'no'} "
                f"subject={quoted(subject) if subject is not None else '-'} "
                f"verify={printable(cert.verify_status) if cert is not None else '-'}"
            )
        return (
            f"{peer(self.client)} {quoted(line)} {self.status} {self.bytes} "
            f"{self.duration * 1000:.3f}ms {how} pid={os.getpid()}"
        )


def access_log_enabled() -> bool:
    """Whether access lines are wanted (checked once per server start, not per request)."""
    return access_log.isEnabledFor(logging.INFO)


def log_access(
    client: tuple[str, int] | None,
    facts: ConnectionFacts | None,
    request: Request,
    status: int,
    sent: int,
    duration: float = 0.0,
) -> None:
    """The access line of one answered request: who, what, how long, over which TLS, and the
    certificate verdict (formatted only by a handler that writes it)."""
    # Straight to the handlers: Logger.info would look for the caller's frame, a third of the
    # cost of a line, for a record that never shows it (the server checked the level at start).
    access_log.handle(
        access_log.makeRecord(
            access_log.name,
            logging.INFO,
            "",
            0,
            AccessEntry(client, facts, request, status, sent, duration),
            (),
            None,
        )
    )


def record_answer(
    state: ServerState,
    facts: ConnectionFacts | None,
    client: tuple[str, int] | None,
    request: Request,
    status: int,
    sent: int,
    took: float,
) -> None:
    """Count (``--metrics-address``) and log (the access log) one answered request, whatever
    the HTTP version. The client is the one the app saw: a trusted proxy's relayed address
    (PROXY header, ``--proxy-headers``), else the socket's peer."""
    if state.metrics is not None:
        state.metrics.request(status, took)
    if state.access_log:
        log_access(
            facts.client if facts is not None else client, facts, request, status, sent, took
        )


# -- handshake failures -------------------------------------------------------------------------

#: at most one line per peer address in this many seconds (the others are counted).
HANDSHAKE_LOG_INTERVAL = 10.0
#: peers remembered for that (the oldest is forgotten first).
HANDSHAKE_LOG_PEERS = 1024


class PeerThrottle:
    """At most one line per ``interval`` seconds per key (a peer's address), counting the ones
    held back. Memory is bounded: ``max_keys`` keys, the least recently logged forgotten
    first. The one rate limit of the logs that a client's behaviour drives (failed
    handshakes, an address over its failure budget)."""

    def __init__(self, interval: float, max_keys: int, clock: Any = time.monotonic) -> None:
        self.interval = interval
        self.max_keys = max_keys
        self._clock = clock
        #: key -> [time of its last line, lines held back since]
        self._keys: OrderedDict[str, list[float]] = OrderedDict()

    def admit(self, key: str) -> int | None:
        """``None``: stay quiet (counted); else log now, and this many were held back."""
        now = self._clock()
        seen = self._keys.get(key)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return None
        self._keys[key] = [now, 0]
        self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return int(seen[1]) if seen is not None else 0

    def __len__(self) -> int:
        return len(self._keys)


class HandshakeFailures:
    """Logs failed TLS handshakes at INFO, rate-limited per peer address: a scanner or a
    misconfigured client retrying in a loop gives one line per ``interval`` seconds, which
    says how many failures it stands for. Memory is bounded (``max_peers`` addresses)."""

    def __init__(
        self,
        interval: float = HANDSHAKE_LOG_INTERVAL,
        max_peers: int = HANDSHAKE_LOG_PEERS,
        clock: Any = time.monotonic,
    ) -> None:
        self.interval = interval
        self._peers = PeerThrottle(interval, max_peers, clock)

    def report(self, client: tuple[str, int] | None, error: TLSError) -> None:
        """One failed handshake with ``client``."""
        if not handshake_log.isEnabledFor(logging.INFO):
            return
        host = client[0] if client is not None else "?"
        suppressed = self._peers.admit(host)
        if suppressed is None:
            return
        reason = printable(error)
        more = (
            f"; {suppressed} more from {printable(host)} not logged in the last {self.interval:g} s"
            if suppressed
            else ""
        )
        handshake_log.info(
            "TLS handshake with %s failed: %s (alert sent: %s, received: %s)%s",
            peer(client),
            reason,
            error.alert or "none",
            error.received_alert or "none",
            more,
            extra={
                "mutls": {
                    "peer": peer(client),
                    "reason": reason,
                    "alert_sent": error.alert,
                    "alert_received": error.received_alert,
                    "suppressed": suppressed,
                }
            },
        )


# -- other events -------------------------------------------------------------------------------


def log_dropped_name(client: tuple[str, int] | None, name: bytes) -> None:
    """A client sent a header name with ``_`` (dropped, as nginx does; once per connection)."""
    log.info(
        "%s sent header %s: names with '_' are dropped (as nginx does), on this connection "
        "without further notice",
        peer(client),
        printable(name.decode("latin-1")),
    )


class HeaderNotes:
    """What one connection logs once, whatever its HTTP version: a header name dropped for its
    ``_``, and client-certificate headers removed from a request not accepted as forwarded."""

    __slots__ = ("certificates", "underscores")

    def __init__(self) -> None:
        self.underscores = self.certificates = False

    def note(
        self,
        client: tuple[str, int] | None,
        dropped_name: bytes | None,
        request: Request,
        forwarding: ForwardedCertificates | None,
    ) -> None:
        """Log what ``request`` had set aside, if not logged yet on this connection."""
        if dropped_name is not None and not self.underscores:
            self.underscores = True
            log_dropped_name(client, dropped_name)
        if request.certificate_headers and not self.certificates:
            if forwarding is None or not forwarding.trusts(client):
                self.certificates = True
                log_certificate_headers(
                    client, request.certificate_headers, proxied=forwarding is not None
                )


def log_certificate_headers(
    client: tuple[str, int] | None, headers: Sequence[tuple[bytes, bytes]], *, proxied: bool
) -> None:
    """A client sent client-certificate headers, removed: one trying its luck, or a proxy
    mutls was not told to trust (``proxied``: other peers are; once per connection)."""
    names = sorted({name.decode("latin-1") for name, _ in headers})
    log.warning(
        "%s sent client-certificate header(s) %s: removed%s; the app sees the verdict, never "
        "such a header (logged once per connection)",
        peer(client),
        printable(", ".join(names)),
        " (not a --trusted-proxy)" if proxied else "",
    )


# -- formats and set-up -------------------------------------------------------------------------


#: the last second formatted, and its text (a busy server logs many lines per second).
_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """``2026-12-02T19:21:33.123Z``: ISO 8601, UTC, milliseconds."""
    global _second
    second = int(record.created)
    if _second[0] != second:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{_second[1]}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-12-02T19:21:33.123Z INFO mutls: serving on https://...``: the UTC time, the
    level, the logger and the message (a traceback follows on its own lines)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``pid``, ``message``, and
    the event's own fields at the top level (an access line's ``status``, ``method``,
    ``target``...; a failed handshake's ``peer``, ``reason``, ``alert_sent``...)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
        }
        if isinstance(record.msg, AccessEntry):
            # the fields say it all; the message only names the request (not the whole
            # text line again: a JSON access line costs half as much without it)
            fields = record.msg.fields()
            entry["message"] = f"{fields['method']} {fields['target']} {fields['status']}"
            entry |= fields
        else:
            entry["message"] = record.getMessage()
        extra = getattr(record, "mutls", None)
        if isinstance(extra, dict):
            entry |= extra
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True, default=str)


FORMATTERS: dict[str, type[logging.Formatter]] = {"text": TextFormatter, "json": JSONFormatter}


def read_log_config(path: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dictionary from ``path``: JSON (``.json``) or TOML
    (``.toml``); a missing, unreadable or malformed file is one UsageError naming it."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".toml"):
        raise UsageError(f"--log-config {path}: name it .json or .toml (the suffix says which)")
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--log-config {path}: {exc.strerror}") from None
    try:
        if suffix == ".json":
            config = json.loads(text)
        else:
            config = tomllib.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--log-config {path}: not valid {suffix[1:].upper()}: {exc}") from None
    if not isinstance(config, dict) or config.get("version") != 1:
        raise UsageError(
            f"--log-config {path}: a logging dictConfig needs `version = 1` at its top "
            "(see docs/server.md, Logs)"
        )
    return config


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "text",
    config: dict[str, Any] | None = None,
    config_path: str | None = None,
    access: bool = True,
) -> None:
    """Set up the ``mutls`` loggers: to stderr in ``fmt`` at ``level``, or as ``config`` (a
    dictConfig, read by :func:`read_log_config` from ``config_path``) says. Without
    ``access`` no access line is made (nor formatted)."""
    root = logging.getLogger("mutls")
    if config is not None:
        config = {"disable_existing_loggers": False, **config}
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            cause = exc.__cause__
            why = f"{exc} ({cause})" if cause is not None and str(cause) not in str(exc) else exc
            raise UsageError(f"--log-config {config_path or '?'}: {why}") from None
    else:
        for handler in [h for h in root.handlers if getattr(h, "_mutls", False)]:
            root.removeHandler(handler)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(FORMATTERS[fmt]())
        handler._mutls = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(level.upper())
    if not access:
        access_log.setLevel(logging.WARNING)  # access lines are INFO: none is made
    elif access_log.level == logging.WARNING:
        access_log.setLevel(logging.NOTSET)


def log_refusal(
    client: tuple[str, int] | None, facts: ConnectionFacts | None, request: Request, reason: str
) -> None:
    """The policy's 403 (an invalid or missing certificate, an unauthorized one), whatever
    the HTTP version."""
    cert = facts.client_certificate if facts is not None else None
    log.warning(
        "refused %s %s from %s (%s): 403 %s",
        request.method,
        printable(request.path),
        peer(client),
        printable(cert.subject if cert is not None and cert.present else "no certificate"),
        printable(reason),
    )
