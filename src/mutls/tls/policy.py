"""The policy decision: the engine records a verdict, this decides whether the app may run."""

from __future__ import annotations

from mutls.tls.client_certificate import ClientCertificate
from mutls.tls.options import ClientCertMode, VerifyPolicy

CERTIFICATE_REQUIRED = "client certificate required"


def refusal_reason(
    cert: ClientCertificate, mode: ClientCertMode, policy: VerifyPolicy
) -> str | None:
    """Why a request must be refused (answered 403 with this text), or ``None`` to let it run.

    In ``require`` mode a missing certificate is refused under both policies; under ``strict``
    an invalid one is refused in every mode; under ``report`` the app sees the verdict.
    """
    if not cert.present:
        return CERTIFICATE_REQUIRED if mode is ClientCertMode.REQUIRE else None
    if not cert.valid and policy is VerifyPolicy.STRICT:
        return f"client certificate not valid: {cert.error or 'unknown error'}"
    return None
