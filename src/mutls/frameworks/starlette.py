"""FastAPI and Starlette: a dependency that returns the certificate, or answers 403.

::

    from fastapi import Depends, FastAPI
    from mutls.frameworks.starlette import ClientCertificateRequired

    require = ClientCertificateRequired(allow="allow.toml")

    @app.get("/")
    async def index(cert: ClientCertificate = Depends(require)):
        return {"subject": cert.subject}

In a Starlette endpoint, ``cert = await require(request)``. The rules' verdict is also in
``request.state.authorization``. Under another server, pass ``proxy=TrustedProxy(...)``.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from mutls.frameworks.check import Refused, Requirement, Rules, TrustedProxy
from mutls.tls.client_certificate import ClientCertificate


class ClientCertificateRequired:
    """A dependency: the request's valid (and admitted) client certificate, else
    ``HTTPException(403)`` whose detail says why."""

    def __init__(self, *, allow: Rules = None, proxy: TrustedProxy | None = None) -> None:
        self.requirement = Requirement(allow, proxy)

    async def __call__(self, request: Request) -> ClientCertificate:
        peer = request.client.host if request.client is not None else None
        try:
            access = self.requirement.check(request, peer, list(request.scope["headers"]))
        except Refused as refused:
            raise HTTPException(refused.status, refused.text) from None
        request.state.client_certificate = access.certificate
        request.state.authorization = access.authorization
        return access.certificate
