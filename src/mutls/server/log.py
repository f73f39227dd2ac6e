"""Server logs: one line per event, with attacker-chosen text made harmless.

A certificate's subject, a request path or a header is chosen by the client; printed raw, a
newline or an ANSI escape in it could forge log lines or rewrite a terminal. :func:`printable`
escapes every control character.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mutls.apps.facts import ConnectionFacts
    from mutls.http.events import Request

log = logging.getLogger("mutls.server")
access_log = logging.getLogger("mutls.access")

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\"}
_ESCAPES |= {c: f"\\x{c:02x}" for c in range(0x80, 0xA0)}  # C1 controls (CSI 0x9B...)


def printable(text: object) -> str:
    """``text`` with control characters (C0, DEL, C1) and backslashes escaped."""
    return str(text).translate(_ESCAPES)


def peer(address: tuple[str, int] | None) -> str:
    """A client's address as logs show it (``[::1]:port`` for IPv6)."""
    if address is None:
        return "?"
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def log_access(
    client: tuple[str, int] | None,
    facts: ConnectionFacts | None,
    request: Request,
    status: int,
    sent: int,
) -> None:
    """The access log line of one answered request: who, what, and the certificate verdict."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    cert = facts.client_certificate if facts is not None else None
    who = cert.subject if cert is not None and cert.present else "-"
    verdict = cert.verify_status if cert is not None else "-"
    access_log.info(
        '%s "%s %s HTTP/%s" %d %d %s %s',
        peer(client),
        request.method,
        printable(request.target.decode("latin-1")),
        request.http_version,
        status,
        sent,
        printable(who),
        printable(verdict),
    )


def log_dropped_name(client: tuple[str, int] | None, name: bytes) -> None:
    """A client sent a header name with ``_`` (dropped, as nginx does; once per connection)."""
    log.info(
        "%s sent header %s: names with '_' are dropped (as nginx does), on this connection "
        "without further notice",
        peer(client),
        printable(name.decode("latin-1")),
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


def configure_logging(verbose: bool) -> None:
    """Log to stderr: warnings always, each request too with ``verbose``."""
    root = logging.getLogger("mutls")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    access_log.setLevel(logging.INFO if verbose else logging.WARNING)


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
