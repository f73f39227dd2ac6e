"""FastAPI: the verdict from the ASGI TLS extension, and a dependency for what needs a valid
certificate.

    mutls serve fastapi_app:app --cert server.pem --key server.key \
        --client-cert optional --verify report --client-ca root.pem
"""

from fastapi import Depends, FastAPI, Request

import mutls
from mutls.frameworks.starlette import ClientCertificateRequired
from mutls.tls import ClientCertificate

app = FastAPI()
require_certificate = ClientCertificateRequired()


@app.get("/")
async def whoami(request: Request):
    cert = mutls.client_certificate(request)
    tls = request.scope["extensions"]["tls"]
    return {"subject": tls["client_cert_name"], "error": tls["client_cert_error"],
            "valid": cert.valid}


@app.get("/private")
async def private(cert: ClientCertificate = Depends(require_certificate)):
    return {"hello": cert.common_name}
