"""Behind a TLS-terminating proxy: the client certificate of each request, from a header the
proxy sets, believed only when the TCP peer is a trusted proxy, and re-verified here.

A proxy multiplexes many clients over one connection, so unlike a handshake's verdict this one
is per request. It is computed by the handshake's own rules
(:meth:`~mutls.tls.verify.ClientVerifier.verify_chain`), and the policy (with ``--allow``'s
rules) decides the same way (:func:`~mutls.authz.admit`). A forwarded certificate proves
nothing about the client holding its key: the proxy checked that in its handshake, and vouches
for it.

Every known client-certificate header is set aside from every request by the HTTP connection
(:attr:`~mutls.http.events.Request.certificate_headers`), whoever sent it: the app learns the
verdict, never a header it might believe; here only a trusted proxy's configured header is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mutls.apps.facts import (
    Address,
    ConnectionFacts,
    asgi_client_fields,
    asgi_mutls_extension,
    wsgi_access_environ,
    wsgi_client_environ,
)
from mutls.apps.peers import Network, TrustedPeers
from mutls.authz.access import Access, admit
from mutls.http.events import Request
from mutls.http.forwarded_certificates import ForwardedHeader
from mutls.pki.trust import TrustMaterial
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.options import ClientCertMode, VerifyPolicy
from mutls.tls.verify import ClientVerifier


def trusted_networks(addresses: tuple[str, ...]) -> tuple[Network, ...]:
    """``--trusted-proxy`` values (IPs or CIDRs) as networks; raises :class:`UsageError`."""
    return TrustedPeers.parse(addresses).networks


@dataclass(frozen=True)
class ForwardedFacts(ConnectionFacts):
    """A request's facts when a trusted proxy forwarded (or did not) a client certificate.

    The scheme stays the hop's (``http``). WSGI gets mod_ssl's ``SSL_CLIENT_*`` names and the
    object; ASGI gets ``extensions["mutls"]`` always and ``extensions["tls"]`` only when a
    certificate was forwarded (the client's connection was then TLS, terminated by the proxy,
    which the ASGI TLS extension provides for: ``server_cert``, ``tls_version`` and
    ``cipher_suite`` are ``None``); without one nobody knows whether it was TLS, and the
    extension must not be given for a non-TLS connection.
    """

    forwarded: ClientCertificate = field(default_factory=ClientCertificate.absent)

    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The verdict on the forwarded certificate."""
        return self.forwarded

    @cached_property
    def wsgi_environ(self) -> dict[str, Any]:
        """``wsgi.url_scheme``, mod_ssl's ``SSL_CLIENT_*`` variables, the authorization."""
        return {
            "wsgi.url_scheme": "http",
            **wsgi_client_environ(self.forwarded),
            **wsgi_access_environ(self.admission),
        }

    @cached_property
    def asgi_extensions(self) -> dict[str, Any]:
        """``mutls`` and, for a forwarded certificate, ``tls`` (see the class docs)."""
        extensions: dict[str, Any] = {"mutls": asgi_mutls_extension(self.forwarded, self.admission)}
        if self.forwarded.present:
            extensions["tls"] = {
                **asgi_client_fields(self.forwarded),
                "server_cert": None,
                "tls_version": None,
                "cipher_suite": None,
            }
        return extensions


class ForwardedCertificates:
    """What one server does with forwarded certificates: whom to believe, which header, the
    trust to verify against, and the policy."""

    def __init__(
        self,
        proxies: tuple[str, ...],
        header: str,
        verifier: ClientVerifier,
        mode: ClientCertMode,
        policy: VerifyPolicy,
        access: Access | None = None,
    ) -> None:
        self.peers = TrustedPeers.parse(proxies)  # the one list (mutls.apps.peers)
        self.networks = self.peers.networks
        self.header = ForwardedHeader.named(header)
        self.verifier = verifier
        self.mode = mode
        self.policy = policy
        self.access = access

    def update_trust(self, trust: TrustMaterial) -> None:
        """Judge the next requests by ``trust`` (SIGHUP)."""
        self.verifier = ClientVerifier(trust)

    def trusts(self, client: Address | None) -> bool:
        """Whether the TCP peer ``client`` is a trusted proxy."""
        return self.peers.trusts(client)

    def request_facts(
        self, request: Request, client: Address | None, server: Address | None
    ) -> ConnectionFacts:
        """The facts of ``request``, from the certificate header set aside from it.

        Raises :class:`~mutls.http.forwarded_certificates.ForwardedCertificateError` (answer
        400) when a trusted proxy's header is malformed. From anyone else the headers are
        dropped unread and the request is anonymous.
        """
        cert = self.certificate(request.certificate_headers, client)
        admission = admit(cert, self.mode, self.policy, self.access)
        return ForwardedFacts(client, server, None, admission, cert)

    def certificate(
        self, headers: Sequence[tuple[bytes, bytes]], client: Address | None
    ) -> ClientCertificate:
        """The verdict on the certificate ``headers`` forward, believed only from a trusted
        proxy ``client`` (from anyone else: absent); raises ``ForwardedCertificateError``."""
        chain = self.header.chain(headers) if self.trusts(client) else None
        return self.verifier.verify_chain(chain) if chain else ClientCertificate.absent()

    @property
    def _header_names(self) -> str:
        return ", ".join(n.decode() for n in (self.header.name, self.header.chain_name) if n)

    def warnings(self) -> list[str]:
        """Startup lines for the operator."""
        notes = [
            f"client certificates are read from the {self._header_names} header of "
            f"requests from {', '.join(map(str, self.networks))} only; the proxy must set it "
            "on every request (replacing what a client sent)"
        ]
        if not self.verifier.has_anchors:
            notes.append(
                "no trust anchor for client certificates (--client-ca FILE or the Trust store): "
                "every forwarded certificate will be reported not valid"
            )
        if self.policy is VerifyPolicy.REPORT:
            notes.append(
                "--verify report: the app runs for invalid client certificates too and must "
                "check mutls.client_certificate(...).valid itself"
            )
        return notes
