"""A raw ASGI app: the verdict as the ASGI TLS extension, and as one object.

    mutls serve asgi_app:app --cert server.pem --key server.key \
        --client-cert optional --verify report --client-ca root.pem
"""

import json

import mutls


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to start
        return
    tls = scope["extensions"]["tls"]
    cert = mutls.client_certificate(scope)
    seen = {
        "subject": tls["client_cert_name"],  # None without a certificate
        "error": tls["client_cert_error"],  # None when valid (or absent)
        "valid": cert.valid,
        "chain": len(tls["client_cert_chain"]),
    }
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})
