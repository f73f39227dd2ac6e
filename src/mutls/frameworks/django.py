"""Django: a middleware that checks the client certificate, and an authentication backend
that maps it to a user.

In ``settings.py``::

    MIDDLEWARE = [..., "django.contrib.auth.middleware.AuthenticationMiddleware",
                  "mutls.frameworks.django.ClientCertificateMiddleware", ...]
    AUTHENTICATION_BACKENDS = ["mutls.frameworks.django.ClientCertificateBackend"]
    MUTLS_ALLOW = "allow.toml"       # optional: allow rules (a path or AllowRules)
    MUTLS_USERNAME = "email"         # what names the user: cn (default), email, spiffe, ...
    MUTLS_REQUIRED = True            # False: annotate requests, refuse none
    MUTLS_TRUSTED_PROXY = TrustedProxy(["127.0.0.1"], "X-Client-Cert")   # under another server

Views then see ``request.client_certificate``, ``request.client_authorization`` and, for a
valid admitted certificate, ``request.user`` (created on first sight, as Django's
``RemoteUserBackend`` does; set ``create_unknown_user = False`` on a subclass to refuse
strangers). The user is set per request, never put in the session: every request carries
its certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.http import HttpResponse

from mutls.authz.user import UserName
from mutls.frameworks.check import Refused, Requirement, wsgi_headers
from mutls.tls.client_certificate import ClientCertificate


def _username_source() -> UserName:
    return UserName.parse(getattr(settings, "MUTLS_USERNAME", "cn"))


class ClientCertificateMiddleware:
    """Check each request's client certificate (settings above); 403 when it must not pass."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    @cached_property
    def requirement(self) -> Requirement:
        """From the settings, read once."""
        return Requirement(
            getattr(settings, "MUTLS_ALLOW", None), getattr(settings, "MUTLS_TRUSTED_PROXY", None)
        )

    def __call__(self, request: Any) -> Any:
        try:
            access = self.requirement.check(
                request, request.META.get("REMOTE_ADDR"), wsgi_headers(request.META)
            )
        except Refused as refused:
            if getattr(settings, "MUTLS_REQUIRED", True):
                return HttpResponse(refused.text, status=refused.status, content_type="text/plain")
            request.client_certificate, request.client_authorization = None, None
            return self.get_response(request)
        request.client_certificate = access.certificate
        request.client_authorization = access.authorization
        if hasattr(request, "user"):  # AuthenticationMiddleware ran: the user is the cert's
            user = auth.authenticate(request, client_certificate=access.certificate)
            if user is not None:
                request.user = user
        return self.get_response(request)


class ClientCertificateBackend(RemoteUserBackend):  # type: ignore[misc]
    """A user per certificate, named by ``MUTLS_USERNAME`` (the CN by default); only a valid
    certificate names anyone."""

    def authenticate(
        self, request: Any, client_certificate: ClientCertificate | None = None
    ) -> Any:
        """The user ``client_certificate`` names (created on first sight), or ``None``."""
        name = _username_source().of(client_certificate)
        if not name:
            return None
        return super().authenticate(request, remote_user=name)
