"""What a connection tells every request on it, rendered once per connection.

The TLS engine settles the :class:`~mutls.tls.ClientCertificate` once per connection; this module
renders it, once per connection and only for the kind of app that runs, into the WSGI environ
variables (mod_ssl's names) or the ASGI ``extensions`` (the ASGI TLS extension 0.2, plus
``mutls``). Each request then copies a ready dict instead of formatting certificates again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mutls.apps.certificate import AUTHORIZATION_KEY, ENVIRON_KEY
from mutls.authz.access import Admission, authorization_status
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.info import TLSInfo

Address = tuple[str, int]


@dataclass(frozen=True)
class ConnectionFacts:
    """The per-connection part of every request: addresses, TLS, the certificate's verdict.

    ``admission`` is the policy's answer for this connection (its ``refusal``, ``None``: the
    app may run; else the text of the 403) and what the allow rules and ``--remote-user`` make
    of the certificate, decided once because the certificate cannot change on a connection.
    ``wsgi_environ`` and ``asgi_extensions`` are rendered on first use, once per connection
    (a server runs one kind of app, and a refused connection needs neither).
    """

    client: Address | None
    server: Address | None
    tls: TLSInfo | None = None
    admission: Admission = field(default_factory=Admission)
    #: the scheme of the client's request as a trusted proxy reported it (``--proxy-headers``;
    #: ``None``: this hop's own). Keyword-only, so subclasses' positional fields stay put.
    relayed_scheme: str | None = field(default=None, kw_only=True)

    @property
    def refusal(self) -> str | None:
        """The 403's text when the app must not run, else ``None``."""
        return self.admission.refusal

    @property
    def scheme(self) -> str:
        """``https`` on a TLS connection, else ``http`` (unless a trusted proxy said which)."""
        if self.relayed_scheme is not None:
            return self.relayed_scheme
        return "https" if self.tls is not None else "http"

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The verdict on the client's certificate (``None`` on plain HTTP)."""
        return self.tls.client_certificate if self.tls is not None else None

    @cached_property
    def wsgi_environ(self) -> dict[str, Any]:
        """The connection's WSGI variables (``wsgi.url_scheme``, ``HTTPS``, mod_ssl's)."""
        if self.tls is None:
            return {"wsgi.url_scheme": "http"}
        return {**wsgi_tls_environ(self.tls), **wsgi_access_environ(self.admission)}

    @cached_property
    def asgi_extensions(self) -> dict[str, Any]:
        """The connection's ASGI ``extensions``: ``tls`` and ``mutls`` (none on plain HTTP)."""
        if self.tls is None:
            return {}
        return {
            "tls": asgi_tls_extension(self.tls),
            "mutls": asgi_mutls_extension(self.tls.client_certificate, self.admission),
        }


def connection_facts(
    client: Address | None,
    server: Address | None,
    tls: TLSInfo | None = None,
    admission: Admission | None = None,
) -> ConnectionFacts:
    """The facts of one connection; its TLS part is rendered for WSGI or ASGI when first used."""
    return ConnectionFacts(client, server, tls, admission or Admission())


def wsgi_access_environ(admission: Admission) -> dict[str, Any]:
    """``MUTLS_AUTHORIZATION`` and the object (with ``--allow``), ``REMOTE_USER`` (with
    ``--remote-user`` and a valid certificate)."""
    env: dict[str, Any] = {}
    if admission.authorization is not None:
        env["MUTLS_AUTHORIZATION"] = authorization_status(admission.authorization)
        env[AUTHORIZATION_KEY] = admission.authorization
    if admission.remote_user is not None:
        env["REMOTE_USER"] = admission.remote_user
    return env


def asgi_mutls_extension(cert: ClientCertificate, admission: Admission) -> dict[str, Any]:
    """``scope["extensions"]["mutls"]``: the certificate's verdict, and the authorization
    and remote user when the server decides them."""
    extension: dict[str, Any] = {"client_certificate": cert}
    if admission.authorization is not None:
        extension["authorization"] = admission.authorization
    if admission.remote_user is not None:
        extension["remote_user"] = admission.remote_user
    return extension


def mod_ssl_time(when: dt.datetime | None) -> str:
    """mod_ssl's date format, e.g. ``Nov 26 20:57:42 2026 GMT``."""
    if when is None:
        return ""
    return when.astimezone(dt.UTC).strftime("%b %d %H:%M:%S %Y GMT")


def wsgi_tls_environ(tls: TLSInfo, now: dt.datetime | None = None) -> dict[str, Any]:
    """``HTTPS``, ``wsgi.url_scheme`` and mod_ssl's ``SSL_*`` variables for one connection."""
    env: dict[str, Any] = {
        "HTTPS": "on",
        "wsgi.url_scheme": "https",
        "SSL_PROTOCOL": tls.version,
        "SSL_CIPHER": tls.cipher,
        "SSL_SESSION_RESUMED": "Resumed" if tls.resumed else "Initial",
    }
    if tls.sni:
        env["SSL_TLS_SNI"] = tls.sni
    env.update(wsgi_client_environ(tls.client_certificate, now))
    return env


def wsgi_client_environ(cert: ClientCertificate, now: dt.datetime | None = None) -> dict[str, Any]:
    """mod_ssl's ``SSL_CLIENT_*`` variables for a certificate (also a forwarded one)."""
    env: dict[str, Any] = {"SSL_CLIENT_VERIFY": cert.verify_status, ENVIRON_KEY: cert}
    if not cert.present or cert.certificate is None:
        return env
    env["SSL_CLIENT_S_DN"] = cert.subject
    env["SSL_CLIENT_I_DN"] = cert.issuer
    env["SSL_CLIENT_M_SERIAL"] = cert.serial
    env["SSL_CLIENT_V_START"] = mod_ssl_time(cert.not_before)
    env["SSL_CLIENT_V_END"] = mod_ssl_time(cert.not_after)
    env["SSL_CLIENT_V_REMAIN"] = str(cert.days_remaining(now))
    env["SSL_CLIENT_CERT"] = cert.pem
    if cert.common_name is not None:
        env["SSL_CLIENT_S_DN_CN"] = cert.common_name
    # mod_ssl numbers the chain from 0, without the leaf.
    for n, pem in enumerate(cert.chain_pem[1:]):
        env[f"SSL_CLIENT_CERT_CHAIN_{n}"] = pem
    for n, name in enumerate(cert.san.dns):
        env[f"SSL_CLIENT_SAN_DNS_{n}"] = name
    for n, email in enumerate(cert.san.email):
        env[f"SSL_CLIENT_SAN_Email_{n}"] = email
    return env


def asgi_tls_extension(tls: TLSInfo) -> dict[str, Any]:
    """``scope["extensions"]["tls"]`` exactly as the ASGI TLS extension 0.2 defines it."""
    return {
        **asgi_client_fields(tls.client_certificate),
        "server_cert": tls.server_cert_pem,
        "tls_version": tls.version_number,
        "cipher_suite": tls.cipher_id,
    }


def asgi_client_fields(cert: ClientCertificate) -> dict[str, Any]:
    """The ASGI TLS extension's ``client_cert_*`` fields for a certificate."""
    return {
        "client_cert_chain": list(cert.chain_pem) if cert.present else [],
        "client_cert_name": cert.subject if cert.present else None,
        "client_cert_error": (
            None if (not cert.present or cert.valid) else (cert.error or "unknown error")
        ),
    }
