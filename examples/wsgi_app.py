"""A raw WSGI app: the verdict as mod_ssl's variables, and as one object.

    mutls serve wsgi_app:app --cert server.pem --key server.key \
        --client-cert optional --verify report --client-ca root.pem
"""

import json

import mutls


def app(environ, start_response):
    cert = mutls.client_certificate(environ)  # None on plain HTTP
    seen = {
        "verify": environ.get("SSL_CLIENT_VERIFY"),  # NONE, SUCCESS or FAILED:<reason>
        "subject": environ.get("SSL_CLIENT_S_DN"),
        "valid": cert.valid if cert is not None else None,
        "error": cert.error if cert is not None else None,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
