"""Find the :class:`ClientCertificate` of a request, whatever framework hands it over."""

from __future__ import annotations

from typing import Any

from mutls.tls.client_certificate import ClientCertificate

#: the key under which the object sits in a WSGI environ and in an ASGI scope's extensions.
ENVIRON_KEY = "mutls.client_certificate"


def client_certificate_of(environ_or_scope: Any) -> ClientCertificate | None:
    """The object from a WSGI environ or ASGI scope served by mutls, else ``None``.

    Also takes a framework's request object: anything with an ``environ`` (Flask/Werkzeug,
    Django) or a ``scope`` (Starlette, FastAPI) attribute, so no per-framework helper is needed.
    """
    if not isinstance(environ_or_scope, dict):
        environ_or_scope = getattr(environ_or_scope, "environ", None) or getattr(
            environ_or_scope, "scope", None
        )
        if not isinstance(environ_or_scope, dict):
            return None
    found = environ_or_scope.get(ENVIRON_KEY)
    if found is None:
        found = environ_or_scope.get("extensions", {}).get("mutls", {}).get("client_certificate")
    return found if isinstance(found, ClientCertificate) else None
