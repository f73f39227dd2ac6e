"""From what ``mutls doctor`` observed to one finding and what to do about it.

The rules go in the order a person would look: could we connect at all, did the server refuse
the certificate (an alert, or an HTTP error after the handshake), then is the server's own
certificate wrong, and last what is merely odd about a request that worked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from mutls.client.answer import ServerKind, page_verdict, server_kind
from mutls.client.connection import HOST_MISMATCH, HandshakeRecord
from mutls.client.hostname import certificate_names
from mutls.client.observation import Observation

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


class Why(enum.Enum):
    """The kinds of refusal a fix is known for."""

    UNTRUSTED = "untrusted"
    VALIDITY = "validity"
    PURPOSE = "purpose"
    REVOKED = "revoked"
    DISALLOWED = "disallowed"
    OTHER = "other"


_ALERTS = {
    "unknown_ca": Why.UNTRUSTED,
    "certificate_expired": Why.VALIDITY,
    "unsupported_certificate": Why.PURPOSE,
    "certificate_revoked": Why.REVOKED,
}
#: OpenSSL's verify error strings (and mutls's Disallowed one), by what to do about them.
_REASONS = (
    ("Disallowed", Why.DISALLOWED),
    ("revoked", Why.REVOKED),
    ("expired", Why.VALIDITY),
    ("not yet valid", Why.VALIDITY),
    ("purpose", Why.PURPOSE),
    ("issuer certificate", Why.UNTRUSTED),
    ("self-signed", Why.UNTRUSTED),
    ("self signed", Why.UNTRUSTED),
    ("verify the first certificate", Why.UNTRUSTED),
)


def _why_of(reason: str | None, alert: str | None, obs: Observation) -> Why:
    """The server's reason when it gave one, else its alert, else what we see ourselves."""
    if reason:
        return next((why for word, why in _REASONS if word in reason), Why.OTHER)
    if alert in _ALERTS:
        return _ALERTS[alert]
    local = obs.local
    if obs.ca_match is False:
        return Why.UNTRUSTED
    if local is not None and local.expired:
        return Why.VALIDITY
    if local is not None and local.eku_refused:
        return Why.PURPOSE
    return Why.OTHER


def _refusal(obs: Observation, rec: HandshakeRecord) -> Finding | None:
    """The server refused the certificate (or its absence): by an alert, by an HTTP error, or
    by a page that says the certificate is not valid."""
    alert = rec.alert
    response = obs.response
    page = page_verdict(response)
    http_refusal = response is not None and response.status >= 400
    unanswered = rec.certificate_requested and not rec.certificate_sent
    if alert is None and not http_refusal:
        if response is None and rec.handshake_done:
            return Finding(True, f"no HTTP answer: {obs.transport_error or rec.error}")
        if not rec.handshake_done:
            return Finding(True, f"the TLS handshake failed: {rec.error}", _tls_fix(rec))
        if page is not None and not page.valid and rec.certificate_sent:
            assert response is not None
            said = f"HTTP {response.status} {response.reason}, {page.source}".rstrip()
            return _refused(obs, rec, _why_of(page.reason, None, obs), page.reason, said)
        return None
    if alert == "certificate_required" or (unanswered and alert == "handshake_failure"):
        return _missing(obs, rec)
    if alert is None:
        assert response is not None
        said = f"HTTP {response.status} {response.reason}".rstrip()
        if response.first_line:
            said += f" ({response.first_line})"
        if unanswered:
            return _missing(obs, rec, said)
        if not rec.certificate_sent:
            return Finding(True, f"the server answered {said}", _log_fix(obs))
        reason = page.reason if page is not None and not page.valid else None
        return _refused(obs, rec, _why_of(reason, None, obs), reason, f"HTTP {response.status}")
    if alert == "protocol_version":
        return Finding(True, "the server and mutls share no TLS version", _tls_fix(rec))
    return _refused(obs, rec, _why_of(None, alert, obs), None, f"alert {alert}")


def _refused(
    obs: Observation, rec: HandshakeRecord, why: Why, reason: str | None, said: str
) -> Finding:
    """The finding for a certificate the server refused (or called not valid), and its fix."""
    identity, local, kind = obs.config.identity, obs.local, server_kind(obs.response)
    who = f"`{identity.subject}`" if identity is not None else "the certificate"
    issuer = f"`{identity.certificate.issuer.rfc4514_string()}`" if identity else "its issuer"
    quoted = f": {reason}" if reason else ""
    if why is Why.UNTRUSTED:
        trusted = _names(rec)
        text = (
            f"the server trusts {trusted}, your certificate is issued by {issuer}"
            if trusted
            else f"the server does not trust {issuer}, the issuer of your certificate"
        )
        return Finding(
            True,
            f"{text}{quoted} ({said})",
            "use a certificate issued by a CA the server trusts, or make the server trust "
            f"{issuer}: {TRUST_FIX[kind]}",
        )
    if why is Why.VALIDITY:
        what = "; ".join(local.problems) if local and local.problems else reason or "expired"
        return Finding(
            True,
            f"your certificate {who} is outside its validity: {what} ({said})",
            NEW_CLIENT_CERT,
        )
    if why is Why.PURPOSE:
        return Finding(
            True,
            f"your certificate {who} may not be used for client authentication: its "
            f"extended key usage lacks clientAuth{quoted} ({said})",
            f"{NEW_CLIENT_CERT} (-eku gives it clientAuth)",
        )
    if why is Why.REVOKED:
        return Finding(
            True,
            f"the server says {who} is revoked{quoted} ({said})",
            f"{NEW_CLIENT_CERT}; {REVOKED_WHERE[kind]}",
        )
    if why is Why.DISALLOWED:
        return Finding(
            True,
            f"the server's Disallowed store lists {who}{quoted} ({said})",
            "use another certificate; if it is there by mistake, on the mutls server: "
            "`mutls certmgr -del -c Disallowed SHA256` and SIGHUP it",
        )
    if reason:
        return Finding(True, f"the server refused {who}{quoted} ({said})", _log_fix(obs))
    if local is not None and local.problems:
        return Finding(True, f"the server refused {who} ({said}): {'; '.join(local.problems)}")
    return Finding(
        True,
        f"the server refused {who} ({said}) without saying why",
        f"{_log_fix(obs)}; check that it trusts your certificate's issuer",
    )


#: where to make a server trust a client CA, by server kind (unknown: all of them).
TRUST_FIX = {
    ServerKind.MUTLS: "on the mutls server, `mutls certmgr -add -c Trust CA.cer` (then SIGHUP "
    "it) or `--client-ca CA.cer`",
    ServerKind.NGINX: "in nginx, add it to the file `ssl_client_certificate` names, then "
    "`nginx -s reload`",
    ServerKind.S_SERVER: "for openssl s_server, give it with `-CAfile CA.pem`",
    ServerKind.UNKNOWN: "mutls: `mutls certmgr -add -c Trust CA.cer`; nginx: "
    "`ssl_client_certificate CA.pem`; openssl s_server: `-CAfile CA.pem`; other servers: their "
    "list of client CAs",
}
#: where a server keeps the revocation that refused the certificate.
REVOKED_WHERE = {
    ServerKind.MUTLS: "the CRL is in the server's Trust or CA store or its --crl "
    "(`mutls certmgr -list -crl Trust -v`)",
    ServerKind.NGINX: "the CRL is nginx's `ssl_crl` file",
    ServerKind.S_SERVER: "the CRL is s_server's `-CRL` file",
    ServerKind.UNKNOWN: "the CRL is the server's (mutls: its stores or --crl; nginx: "
    "`ssl_crl`; openssl s_server: `-CRL`)",
}
#: where the server says why it refused.
_LOG = {
    ServerKind.MUTLS: "the mutls server logs each refusal with its reason",
    ServerKind.NGINX: "nginx's error log says why (`client SSL certificate verify error: …`)",
    ServerKind.S_SERVER: "openssl s_server prints the verify error on its output",
    ServerKind.UNKNOWN: "see the server's error log",
}


def _log_fix(obs: Observation) -> str:
    return _LOG[server_kind(obs.response)]


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
    first = rec.verify_failures[0]
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
        if identity is not None:  # offered, asked for, and still not sent: that is a problem
            return _missing(obs, rec, status)
        return Finding(
            False,
            f"the server asked for a client certificate but accepted the request without one "
            f"({status})",
            None,
            ["it asks optionally; give --cert to be identified"],
        )
    assert identity is not None
    if local is not None and local.problems:
        # Accepted, and nothing in the answer says otherwise: the server does not check.
        return Finding(
            True,
            f"the server accepted `{identity.subject}` ({status}), which is not valid: "
            f"{'; '.join(local.problems)}; the server does not check it, so its application must",
            NEW_CLIENT_CERT,
        )
    finding = Finding(False, f"the server accepted `{identity.subject}` ({status})")
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
