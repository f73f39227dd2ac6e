"""Flask, made by a factory: one open page that shows the verdict, one that needs a valid
certificate.

    mutls serve 'flask_app:create_app()' --cert server.pem --key server.key \
        --client-cert optional --verify report --client-ca root.pem
"""

from flask import Flask, g, jsonify, request

import mutls
from mutls.frameworks.flask import client_certificate_required


def create_app():
    app = Flask(__name__)

    @app.get("/")
    def whoami():
        cert = mutls.client_certificate(request)
        return jsonify(
            verify=request.environ["SSL_CLIENT_VERIFY"],
            subject=cert.subject if cert.present else None,
            valid=cert.valid,
            error=cert.error,
        )

    @app.get("/private")
    @client_certificate_required  # a 403 that says why for anyone else
    def private():
        return f"Hello {g.client_certificate.common_name}, you may come in"

    return app
