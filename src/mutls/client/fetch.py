"""``mutls get``: one HTTPS request with a client certificate, and why it failed in one line."""

from __future__ import annotations

from dataclasses import dataclass

from mutls.client.connection import (
    HOST_MISMATCH,
    ClientConfig,
    HandshakeRecord,
    TLSBroken,
    TLSClientConnection,
)
from mutls.client.errors import ClientTLSError, ConnectError
from mutls.client.hostname import certificate_names
from mutls.client.http import Request, Response, ResponseParser, Target, parse_url
from mutls.pki.certs import allows_client_auth
from mutls.pki.identity import Identity


@dataclass(frozen=True)
class Exchange:
    """A request, the handshake that carried it, and the response."""

    request: Request
    target: Target
    record: HandshakeRecord
    response: Response


def fetch(request: Request, config: ClientConfig) -> Exchange:
    """Send ``request`` and read the whole response.

    Raises :class:`ConnectError` (exit 4) and :class:`ClientTLSError` (exit 3) with one line that
    says what went wrong and what to do; an HTTP error status is a normal :class:`Exchange`.
    """
    target = parse_url(request.url)
    with TLSClientConnection(target.host, target.port, config, strict=True) as conn:
        try:
            record = conn.connect()
            conn.sendall(request.to_bytes(target))
            parser = ResponseParser(head_only=request.method.upper() == "HEAD")
            while not parser.complete:
                data = conn.recv()
                if not data:
                    if not parser.end_of_stream():
                        raise ConnectError(
                            f"{target.host}:{target.port}: the server closed the connection "
                            "before a complete response"
                        )
                    break
                parser.feed(data)
        except TLSBroken as broken:
            message = explain(broken.record, config, request.url)
            raise ClientTLSError(message, broken.record) from None
        except ValueError as exc:
            raise ConnectError(f"{target.host}:{target.port}: {exc}") from None
    return Exchange(request, target, record, parser.response)


def explain(record: HandshakeRecord, config: ClientConfig, url: str) -> str:
    """One line for a TLS failure: whose fault, and the fix."""
    identity = config.identity
    if record.verify_failures and not config.insecure and not record.alerts_received:
        return _untrusted_server(record)
    alert = record.alert
    if alert is None:
        reason = record.error or "unknown error"
        if "wrong version number" in reason or "packet length too long" in reason:
            return f"TLS handshake failed ({reason}): is {record.host}:{record.port} an HTTPS port?"
        return f"TLS failure: {reason}"
    unanswered = record.certificate_requested and not record.certificate_sent
    if alert == "certificate_required" or (alert == "handshake_failure" and unanswered):
        if identity is None:
            return "server requires a client certificate and none was given: add --cert"
        return (
            f"server requires a client certificate and {identity.subject} was not sent "
            f"(its key type is not one the server accepts): run `mutls doctor {url}`"
        )
    return _refused(alert, record, identity, url)


def _untrusted_server(record: HandshakeRecord) -> str:
    first = record.verify_failures[0]
    if first.message == HOST_MISMATCH and record.server_chain:
        names = ", ".join(certificate_names(record.server_chain[0])) or "no names"
        return (
            f"server certificate is for {names}, not {record.host}: "
            "use one of those names in the URL (or --insecure)"
        )
    return (
        f"server certificate not trusted: {first.message} ({first.subject}): give its CA with "
        "--cacert FILE or add it to the Trust store (mutls certmgr -add -c Trust FILE), "
        "or use --insecure"
    )


def _refused(alert: str, record: HandshakeRecord, identity: Identity | None, url: str) -> str:
    who = identity.subject if identity is not None else "your certificate"
    if alert == "unknown_ca":
        issuer = identity.certificate.issuer.rfc4514_string() if identity else "its issuer"
        trusted = "; ".join(n.rfc4514_string() for n in record.ca_names)
        tail = f"; it accepts certificates issued by {trusted}" if trusted else ""
        return f"server does not trust {who}, issued by {issuer}{tail}"
    if alert == "certificate_expired":
        if identity is not None:
            end = identity.certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
            return f"server refused {who}: it expired on {end} (or is not yet valid)"
        return "server says the client certificate has expired"
    if alert == "unsupported_certificate":
        if identity is not None and not allows_client_auth(identity.certificate):
            return f"server refused {who}: its extended key usage does not allow clientAuth"
        return f"server refused {who} as unsuitable for client authentication"
    if alert == "certificate_revoked":
        return f"server says {who} is revoked"
    if alert == "protocol_version":
        return "server and client share no TLS version (mutls speaks TLS 1.2 and 1.3)"
    if alert in {"bad_certificate", "certificate_unknown", "decrypt_error", "access_denied"}:
        return f"server refused {who} ({alert}): run `mutls doctor {url}` with it to see why"
    when = " after the handshake" if record.alert_after_handshake else ""
    return f"server ended the connection with TLS alert {alert}{when}"


def handshake_summary(record: HandshakeRecord, identity: Identity | None) -> list[str]:
    """What ``-v`` prints: version, cipher, server certificate, the client certificate dance."""
    lines = [f"* connected to {record.host} ({record.address}) port {record.port}"]
    if record.version:
        lines.append(f"* {record.version}, cipher {record.cipher}, ALPN {record.alpn or 'none'}")
    if record.server_chain:
        leaf = record.server_chain[0]
        lines.append(
            f"* server certificate: {leaf.subject.rfc4514_string()}, "
            f"issued by {leaf.issuer.rfc4514_string()}"
        )
    if record.verify_failures:
        lines += [f"* server certificate NOT verified: {e.message}" for e in record.verify_failures]
    elif record.server_chain:
        lines.append(f"* server certificate verified, host name {record.host} matches")
    if record.certificate_requested:
        names = "; ".join(n.rfc4514_string() for n in record.ca_names) or "none named"
        lines.append(f"* server requested a client certificate (accepted CAs: {names})")
    else:
        lines.append("* server did not request a client certificate")
    if record.certificate_sent and identity is not None:
        lines.append(f"* client certificate sent: {identity.subject}")
    else:
        offered = " (one was given, but not asked for)" if identity is not None else ""
        lines.append(f"* no client certificate sent{offered}")
    return lines
