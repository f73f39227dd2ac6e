"""Flask: ``@client_certificate_required``, the view runs only for a valid certificate.

::

    from mutls.frameworks.flask import client_certificate_required

    @app.get("/")
    @client_certificate_required(allow="allow.toml")
    def index():
        return f"Hello {flask.g.client_certificate.subject}"

The certificate's verdict is ``flask.g.client_certificate``, the rules' verdict
``flask.g.authorization``. Under another server, pass ``proxy=TrustedProxy(...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, overload

import flask

from mutls.frameworks.check import Refused, Requirement, Rules, TrustedProxy, wsgi_headers

View = TypeVar("View", bound=Callable[..., Any])


@overload
def client_certificate_required(view: View) -> View: ...
@overload
def client_certificate_required(
    view: None = None, *, allow: Rules = None, proxy: TrustedProxy | None = None
) -> Callable[[View], View]: ...
def client_certificate_required(
    view: View | None = None, *, allow: Rules = None, proxy: TrustedProxy | None = None
) -> View | Callable[[View], View]:
    """Run the view only for a valid client certificate the rules ``allow`` admit; answer a
    plain-text 403 saying why otherwise. Bare (``@client_certificate_required``) or called."""
    requirement = Requirement(allow, proxy)

    def decorate(inner: View) -> View:
        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            request = flask.request
            try:
                access = requirement.check(
                    request, request.environ.get("REMOTE_ADDR"), wsgi_headers(request.environ)
                )
            except Refused as refused:
                flask.abort(flask.Response(refused.text, refused.status, mimetype="text/plain"))
            flask.g.client_certificate = access.certificate
            flask.g.authorization = access.authorization
            return inner(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate(view) if view is not None else decorate
