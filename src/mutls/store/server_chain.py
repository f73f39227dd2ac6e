"""``certmgr -ssl URL``: fetch the certificate chain a TLS server presents, without trusting it.

The point of fetching is that the chain is not trusted yet, so verification is off here; what
is done with the certificates (a root into ``Trust`` only after the user confirms) is decided
by the caller. pyOpenSSL is used because Python 3.11's ``ssl`` only returns the leaf of an
unverified peer (``get_unverified_chain`` arrived in 3.13).
"""

from __future__ import annotations

import select
import socket
import time
from urllib.parse import urlsplit

from cryptography import x509
from OpenSSL import SSL

from mutls.store.locations import StoreError

DEFAULT_PORTS = {"https": 443, "wss": 443, "ldaps": 636, "imaps": 993, "smtps": 465}


def parse_target(url: str) -> tuple[str, int]:
    """``https://host:port/…``, ``host:port`` or ``host`` -> (host, port)."""
    text = url if "://" in url else f"https://{url}"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise StoreError(f"-ssl {url}: not a URL ({exc})") from None
    if not parts.hostname:
        raise StoreError(f"-ssl {url}: no host name in the URL")
    if port is None:
        port = DEFAULT_PORTS.get(parts.scheme.lower())
        if port is None:
            raise StoreError(f"-ssl {url}: give the port (no default for {parts.scheme}://)")
    return parts.hostname, port


def fetch_chain(url: str, *, timeout: float = 10.0) -> list[x509.Certificate]:
    """The certificates the server at ``url`` sends, leaf first, as sent (not verified)."""
    host, port = parse_target(url)
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise StoreError(f"-ssl {url}: cannot connect to {host}:{port}: {_reason(exc)}") from None
    try:
        conn = SSL.Connection(context, sock)
        if not _is_ip(host):
            conn.set_tlsext_host_name(host.encode("idna"))
        conn.set_connect_state()
        _handshake(conn, sock, timeout)
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
    except SSL.Error as exc:
        raise StoreError(f"-ssl {url}: TLS handshake failed: {_ssl_reason(exc)}") from None
    except OSError as exc:
        raise StoreError(f"-ssl {url}: connection failed: {_reason(exc)}") from None
    finally:
        sock.close()
    if not chain:
        raise StoreError(f"-ssl {url}: the server sent no certificate")
    return list(chain)


def _handshake(conn: SSL.Connection, sock: socket.socket, timeout: float) -> None:
    # A socket with a timeout is non-blocking underneath, so OpenSSL asks to be called again;
    # every wait is bounded, so a silent server cannot hang the command.
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.do_handshake()
            return
        except SSL.WantReadError:
            readable, writable = [sock], []
        except SSL.WantWriteError:
            readable, writable = [], [sock]
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not any(select.select(readable, writable, [], remaining)):
            raise TimeoutError("timed out")


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except OSError:
        return False
    return True


def _reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return exc.strerror or str(exc)


def _ssl_reason(exc: SSL.Error) -> str:
    details = exc.args[0] if exc.args else None
    if isinstance(details, list) and details and isinstance(details[0], tuple):
        return str(details[0][-1])
    return str(exc) or type(exc).__name__
