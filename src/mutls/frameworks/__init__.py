"""Framework helpers, thin over :func:`mutls.client_certificate`: one check, three shapes.

- Flask: ``@client_certificate_required`` (:mod:`mutls.frameworks.flask`);
- FastAPI and Starlette: ``Depends(ClientCertificateRequired())``
  (:mod:`mutls.frameworks.starlette`);
- Django: ``ClientCertificateMiddleware`` and ``ClientCertificateBackend``
  (:mod:`mutls.frameworks.django`).

Each takes the verdict mutls's server put on the request, or, under another server (gunicorn,
uvicorn) behind nginx or Envoy, the certificate a :class:`TrustedProxy` forwards, verified here
by the server's own rules. Allow rules (:class:`mutls.authz.AllowRules`, or a TOML file's path)
narrow who may call. A refusal is a 403 whose text says why, as the server's is.
"""

from mutls.frameworks.check import ClientAccess, Refused, Requirement, TrustedProxy

__all__ = ["ClientAccess", "Refused", "Requirement", "TrustedProxy"]
