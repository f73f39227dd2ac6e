"""Admission: the policy's verdict on validity, then the allow rules', then ``REMOTE_USER``.

Decided once per connection (per request behind a proxy) and rendered for the app: the WSGI
environ gets ``MUTLS_AUTHORIZATION`` (``ALLOWED:<rule>`` or ``DENIED:<why>``, in the manner
of ``SSL_CLIENT_VERIFY``), ``REMOTE_USER`` and the objects; ASGI gets them in
``scope["extensions"]["mutls"]``. ``valid`` and ``SSL_CLIENT_VERIFY`` never change.
"""

from __future__ import annotations

from dataclasses import dataclass

from mutls.authz.rules import AllowRules, Authorization
from mutls.authz.user import UserName
from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.options import ClientCertMode, VerifyPolicy
from mutls.tls.policy import refusal_reason


@dataclass(frozen=True)
class Access:
    """Who may call (``--allow FILE``) and what names the user (``--remote-user``)."""

    rules: AllowRules | None = None
    remote_user: UserName | None = None


@dataclass(frozen=True)
class Admission:
    """What the server decided about one client: refuse (the 403's text) or run the app, and
    what the app is told besides the certificate's verdict."""

    refusal: str | None = None
    authorization: Authorization | None = None
    remote_user: str | None = None


def admit(
    cert: ClientCertificate, mode: ClientCertMode, policy: VerifyPolicy, access: Access | None
) -> Admission:
    """The admission of a client with ``cert``.

    Under ``strict``, a valid certificate the rules do not admit is refused with a 403 that
    says so; under ``report`` the app runs and sees both verdicts. Whether a client without a
    certificate is served stays the mode's decision (``require`` refuses it).
    """
    refusal = refusal_reason(cert, mode, policy)
    if access is None:
        return Admission(refusal)
    authorization = access.rules.check(cert) if access.rules is not None else None
    if (
        refusal is None
        and authorization is not None
        and not authorization.authorized
        and cert.present
        and policy is VerifyPolicy.STRICT
    ):
        refusal = f"client certificate not authorized: {authorization.reason}"
    user = access.remote_user.of(cert) if access.remote_user is not None else None
    return Admission(refusal, authorization, user)


def authorization_status(authorization: Authorization) -> str:
    """``ALLOWED:<rule>`` or ``DENIED:<why>``, as ``SSL_CLIENT_VERIFY`` says SUCCESS/FAILED."""
    if authorization.authorized:
        return f"ALLOWED:{authorization.rule}"
    return f"DENIED:{authorization.reason}"
