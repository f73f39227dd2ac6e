"""The one check every framework helper makes, on a WSGI environ or an ASGI scope."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mutls.apps.certificate import authorization_of, client_certificate_of
from mutls.apps.forwarded_certificates import ForwardedCertificates
from mutls.authz.access import Access, admit
from mutls.authz.rules import AllowRules, Authorization
from mutls.http.events import Headers
from mutls.http.forwarded_certificates import ForwardedCertificateError
from mutls.pki.trust import TrustMaterial
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.options import ClientCertMode, VerifyPolicy

Rules = AllowRules | str | os.PathLike[str] | None


class Refused(Exception):
    """The request may not reach the view: answer ``status`` with ``text`` (plain text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


@dataclass(frozen=True)
class TrustedProxy:
    """Under another server, believe the certificate that these proxies forward.

    ``addresses`` are IPs or CIDRs (the proxy's, as ``REMOTE_ADDR`` or the ASGI ``client``
    shows it); ``header`` is the one the proxy sets (``X-Client-Cert`` for nginx's
    ``$ssl_client_escaped_cert``, ``Client-Cert`` for RFC 9440, ``x-forwarded-client-cert``
    for Envoy); the chain is verified against ``client_ca`` files (default: the user's
    ``Trust`` store) or ``trust``. Any other peer's header is ignored. The proxy must set the
    header on every request, replacing what a client sent (docs/server.md, "Behind a proxy").
    """

    addresses: Sequence[str]
    header: str
    client_ca: Sequence[str | os.PathLike[str]] = ()
    trust: TrustMaterial | None = field(default=None, repr=False)

    @cached_property
    def _forwarded(self) -> ForwardedCertificates:
        from mutls.store import client_trust
        from mutls.tls.verify import ClientVerifier

        trust = self.trust or client_trust(client_ca_files=tuple(self.client_ca))
        return ForwardedCertificates(
            tuple(self.addresses),
            self.header,
            ClientVerifier(trust),
            ClientCertMode.OPTIONAL,
            VerifyPolicy.REPORT,
        )

    def certificate(self, peer: str | None, headers: Headers) -> ClientCertificate:
        """The verdict on what ``headers`` forward (absent unless ``peer`` is a proxy);
        raises :class:`Refused` (400) for a trusted proxy's malformed header."""
        try:
            return self._forwarded.certificate(headers, (peer, 0) if peer else None)
        except ForwardedCertificateError as exc:
            raise Refused(400, str(exc)) from None


@dataclass(frozen=True)
class ClientAccess:
    """What a view is told: the certificate's verdict and, with rules, the authorization."""

    certificate: ClientCertificate
    authorization: Authorization | None


@dataclass(frozen=True)
class Requirement:
    """A valid client certificate, admitted by ``allow`` when given (rules or a TOML path),
    from mutls's server or a :class:`TrustedProxy`. Without ``allow``, a refusal the server
    itself decided (``serve --allow --verify report``) still stands."""

    allow: Rules = None
    proxy: TrustedProxy | None = None

    @cached_property
    def rules(self) -> AllowRules | None:
        """The allow rules (a file is read once, on first use)."""
        if self.allow is None or isinstance(self.allow, AllowRules):
            return self.allow
        return AllowRules.load(self.allow)

    def check(self, request: Any, peer: str | None, headers: Headers) -> ClientAccess:
        """The access of a request (an environ, a scope, or a request holding one); raises
        :class:`Refused` when the view must not run."""
        cert = client_certificate_of(request)
        if cert is None and self.proxy is not None:
            cert = self.proxy.certificate(peer, headers)
        cert = cert or ClientCertificate.absent()
        rules = self.rules
        admission = admit(
            cert,
            ClientCertMode.REQUIRE,
            VerifyPolicy.STRICT,
            Access(rules) if rules is not None else None,
        )
        authorization = admission.authorization
        if rules is None:
            authorization = authorization_of(request)
            if admission.refusal is None and authorization and not authorization.authorized:
                raise Refused(403, f"client certificate not authorized: {authorization.reason}")
        if admission.refusal is not None:
            raise Refused(403, admission.refusal)
        return ClientAccess(cert, authorization)


def wsgi_headers(environ: dict[str, Any]) -> Headers:
    """The request headers of a WSGI environ, as the proxy sent them (names lower-cased)."""
    return [
        (key[5:].replace("_", "-").lower().encode("latin-1"), str(value).encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
