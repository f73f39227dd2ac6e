"""From what ``mutls doctor`` observed to one finding and what to do about it.

The rules go in the order a person would look: could we connect at all, did the server refuse
the certificate (an alert, or an HTTP error after the handshake), then is the server's own
certificate wrong, and last what is merely odd about a request that worked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mutls.client.hostname import certificate_names
from mutls.client.observation import Observation
from mutls.client.session import HOST_MISMATCH, HandshakeRecord

NEW_CLIENT_CERT = (
    'issue a new one, e.g. `mutls makecert -iv CA.key -ic CA.cer -eku -n "CN=NAME" '
    "-p12 NAME.p12 PASSWORD`"
)
ASK_FOR_CERT = (
    "configure the server to request one (mutls xsp --https-client-accept or "
    "--https-client-require; nginx: ssl_verify_client optional)"
)


@dataclass
class Finding:
    """The verdict of the whole visit."""

    problem: bool
    text: str
    fix: str | None = None
    notes: list[str] = field(default_factory=list)


def _names(rec: HandshakeRecord) -> str:
    return ", ".join(f"`{n.rfc4514_string()}`" for n in rec.ca_names)


def diagnose(obs: Observation) -> Finding:
    """The one finding that explains ``obs`` best (see the module docstring for the order)."""
    rec = obs.record
    if obs.connect_error is not None or rec is None:
        return Finding(
            True,
            f"cannot connect: {obs.connect_error}",
            "check the host and port in the URL and that the server is running",
        )
    refused = _refusal(obs, rec)
    finding = refused or _server_problem(obs, rec) or _accepted(obs, rec)
    if refused is not None or finding.problem:
        server = _server_problem(obs, rec)
        if server is not None and server is not finding and server.text != finding.text:
            finding.notes.append(f"also: {server.text}")
    return finding


def _refusal(obs: Observation, rec: HandshakeRecord) -> Finding | None:
    """The server refused the certificate (or its absence): by an alert or an HTTP error."""
    identity, local = obs.config.identity, obs.local
    alert = rec.alert
    response = obs.response
    http_refusal = response is not None and response.status >= 400
    if alert is None and not http_refusal:
        if response is None and rec.handshake_done:
            return Finding(True, f"no HTTP answer: {obs.transport_error or rec.error}")
        if not rec.handshake_done:
            return Finding(True, f"the TLS handshake failed: {rec.error}", _tls_fix(rec))
        return None
    unanswered = rec.certificate_requested and not rec.certificate_sent
    if alert == "certificate_required" or (unanswered and alert == "handshake_failure"):
        return _missing(obs, rec)
    if http_refusal and alert is None:
        assert response is not None
        said = f"HTTP {response.status} {response.reason}".rstrip()
        if response.first_line:
            said += f" ({response.first_line})"
        if unanswered:
            return _missing(obs, rec, said)
        if not rec.certificate_sent:
            return Finding(True, f"the server answered {said}", "see the server's log")
        alert = "http"
    who = f"`{identity.subject}`" if identity is not None else "the certificate"
    issuer = f"`{identity.certificate.issuer.rfc4514_string()}`" if identity else "its issuer"
    said = f"alert {alert}" if alert != "http" else "an HTTP error after the handshake"
    if alert == "unknown_ca" or obs.ca_match is False:
        trusted = _names(rec)
        text = (
            f"the server trusts {trusted}, your certificate is issued by {issuer}"
            if trusted
            else f"the server does not trust {issuer}, the issuer of your certificate"
        )
        return Finding(
            True,
            f"{text} ({said})",
            "use a certificate issued by a CA the server trusts, or add "
            f"{issuer} to the server's client CAs (mutls certmgr -add -c Trust CA.cer)",
        )
    if alert == "certificate_expired" or (local is not None and local.expired):
        return Finding(
            True,
            f"your certificate {who} is outside its validity: "
            f"{'; '.join(local.problems) if local else 'the server says it expired'} ({said})",
            NEW_CLIENT_CERT,
        )
    if alert == "unsupported_certificate" or (local is not None and local.eku_refused):
        return Finding(
            True,
            f"your certificate {who} may not be used for client authentication: its "
            f"extended key usage lacks clientAuth ({said})",
            f"{NEW_CLIENT_CERT} (-eku gives it clientAuth)",
        )
    if alert == "certificate_revoked":
        return Finding(True, f"the server says {who} is revoked ({said})", NEW_CLIENT_CERT)
    if local is not None and local.problems:
        return Finding(
            True, f"the server refused {who} ({said}): {'; '.join(local.problems)}", None
        )
    if alert == "protocol_version":
        return Finding(True, "the server and mutls share no TLS version", _tls_fix(rec))
    return Finding(
        True,
        f"the server refused {who} ({said}) for a reason it did not name",
        "see the server's error log; check that it trusts your certificate's issuer",
    )


def _missing(obs: Observation, rec: HandshakeRecord, said: str | None = None) -> Finding:
    how = f" ({said})" if said else f" (alert {rec.alert})"
    identity = obs.config.identity
    if identity is None:
        return Finding(
            True,
            f"the server requires a client certificate and none was offered{how}",
            "give one with --cert FILE (a P12, or PEM with --key) and its password",
        )
    return Finding(
        True,
        f"the server asked for a client certificate but `{identity.subject}` was not sent{how}",
        "the server may not accept its key type or signature algorithm; try an RSA or "
        "ECDSA P-256 certificate",
    )


def _server_problem(obs: Observation, rec: HandshakeRecord) -> Finding | None:
    if rec.server_verified or obs.config.insecure or not rec.server_chain:
        return None
    first = rec.verify_errors[0]
    if first.message == HOST_MISMATCH:
        names = ", ".join(certificate_names(rec.server_chain[0])) or "no names"
        return Finding(
            True,
            f"the server's certificate is for {names}, not for {rec.host}",
            f"use one of {names} in the URL, or give the server a certificate that names "
            f"{rec.host} (mutls makecert ... -n CN={rec.host})",
        )
    return Finding(
        True,
        f"the server's certificate does not verify: {first.message} ({first.subject})",
        "give the CA that issued it with --cacert FILE, or add it to your Trust store "
        "(mutls certmgr -add -c Trust CA.cer)",
    )


def _accepted(obs: Observation, rec: HandshakeRecord) -> Finding:
    identity, local = obs.config.identity, obs.local
    response = obs.response
    status = f"HTTP {response.status}" if response is not None else "an answer"
    if not rec.certificate_requested:
        finding = Finding(False, f"the server did not ask for a client certificate ({status})")
        if identity is not None:
            finding.notes.append(
                f"`{identity.subject}` was not sent; if the application expects it, " + ASK_FOR_CERT
            )
        return finding
    if not rec.certificate_sent:
        return Finding(
            False,
            f"the server asked for a client certificate but accepted the request without one "
            f"({status})",
            None,
            ["it asks optionally; give --cert to be identified"],
        )
    assert identity is not None
    finding = Finding(False, f"the server accepted `{identity.subject}` ({status})")
    if local is not None and local.problems:
        finding.notes.append(
            "it is not valid by itself (" + "; ".join(local.problems) + "): the server only "
            "reports it and the application decides"
        )
    if obs.ca_match is False:
        finding.notes.append(
            f"its issuer is not among the CAs the server named ({_names(rec)}): the server "
            "forgives unknown issuers (nginx optional_no_ca, XSP) and the application decides"
        )
    return finding


def _tls_fix(rec: HandshakeRecord) -> str:
    reason = rec.error or ""
    if "wrong version number" in reason or "packet length" in reason:
        return f"is {rec.host}:{rec.port} an HTTPS port? (it does not speak TLS)"
    return "run with -v and compare with `openssl s_client -connect HOST:PORT`"
