"""mutls: client-certificate (mutual TLS) authentication for Python web applications, end to end.

The pieces, from the bottom up: :mod:`mutls.pki` makes and reads keys and certificates,
:mod:`mutls.store` keeps trust, :mod:`mutls.tls` is the TLS engine that records *why* a client
certificate is or is not acceptable, :mod:`mutls.http` and :mod:`mutls.server` serve WSGI and ASGI
apps, and :mod:`mutls.client` fetches pages with a client certificate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when called: ``import mutls`` stays light
    from mutls.authz.rules import Authorization
    from mutls.tls.client_certificate import ClientCertificate

__version__ = "0.1.0"

__all__ = ["__version__", "authorization", "client_certificate"]


def client_certificate(environ_or_scope: Any) -> ClientCertificate | None:
    """Return the :class:`mutls.tls.ClientCertificate` of a WSGI environ or an ASGI scope.

    Works for any framework that hands the app the raw environ or scope. Returns ``None`` for a
    request that did not arrive through mutls.
    """
    from mutls.apps.certificate import client_certificate_of

    return client_certificate_of(environ_or_scope)


def authorization(environ_or_scope: Any) -> Authorization | None:
    """Return the server's :class:`mutls.authz.Authorization` of a request (``serve --allow``):
    whether the allow rules admit the client and by which rule; ``None`` without rules."""
    from mutls.apps.certificate import authorization_of

    return authorization_of(environ_or_scope)
