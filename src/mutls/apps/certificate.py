"""Find the :class:`ClientCertificate` of a request, whatever framework hands it over."""

from __future__ import annotations

from typing import Any

from mutls.authz.rules import Authorization
from mutls.tls.client_certificate import ClientCertificate

#: the key under which the object sits in a WSGI environ and in an ASGI scope's extensions.
ENVIRON_KEY = "mutls.client_certificate"
#: the key of the server's :class:`~mutls.authz.Authorization` (``--allow``) in an environ.
AUTHORIZATION_KEY = "mutls.authorization"


def client_certificate_of(environ_or_scope: Any) -> ClientCertificate | None:
    """The object from a WSGI environ or ASGI scope served by mutls, else ``None``.

    Also takes a framework's request object: anything with an ``environ`` (Flask/Werkzeug,
    Django) or a ``scope`` (Starlette, FastAPI) attribute, so no per-framework helper is needed.
    """
    found = _lookup(environ_or_scope, ENVIRON_KEY, "client_certificate")
    return found if isinstance(found, ClientCertificate) else None


def authorization_of(environ_or_scope: Any) -> Authorization | None:
    """The server's authorization verdict (``serve --allow``) of a request, else ``None``."""
    found = _lookup(environ_or_scope, AUTHORIZATION_KEY, "authorization")
    return found if isinstance(found, Authorization) else None


def _lookup(environ_or_scope: Any, environ_key: str, extension_key: str) -> Any:
    """What mutls put in a WSGI environ (``environ_key``) or an ASGI scope's ``mutls``
    extension (``extension_key``), given either or a framework's request."""
    if not isinstance(environ_or_scope, dict):
        environ_or_scope = getattr(environ_or_scope, "environ", None) or getattr(
            environ_or_scope, "scope", None
        )
        if not isinstance(environ_or_scope, dict):
            return None
    found = environ_or_scope.get(environ_key)
    if found is None:
        found = environ_or_scope.get("extensions", {}).get("mutls", {}).get(extension_key)
    return found
