"""WSGI and ASGI adapters, and the built-in pages (the article's test page)."""

from __future__ import annotations

import os
from typing import Any, cast

from mutls.apps.asgi import ASGIAdapter
from mutls.apps.base import HTTPApp, ResponseChannel
from mutls.apps.facts import ConnectionFacts, connection_facts
from mutls.apps.loader import app_kind, import_app
from mutls.apps.static import StaticFiles
from mutls.apps.testpage import TestPageApp
from mutls.apps.wsgi import WSGIAdapter

__all__ = [
    "ASGIAdapter",
    "ConnectionFacts",
    "HTTPApp",
    "ResponseChannel",
    "StaticFiles",
    "TestPageApp",
    "WSGIAdapter",
    "build_app",
    "connection_facts",
]


def build_app(
    spec: str | object | None,
    *,
    app_dir: str | os.PathLike[str] = ".",
    root: str | os.PathLike[str] | None = None,
    threads: int = 16,
    thread_queue: int | None = None,
) -> HTTPApp:
    """The app to serve: ``module:attribute`` or the app itself (WSGI or ASGI, detected; an
    :class:`HTTPApp` as it is), or the test page when ``spec`` is ``None``."""
    if spec is None:
        return TestPageApp(StaticFiles(root) if root is not None else None)
    if not callable(spec) and callable(getattr(spec, "handle", None)):
        return cast(HTTPApp, spec)  # already speaks the server's own interface
    app: Any = import_app(spec, app_dir) if isinstance(spec, str) else spec
    if app_kind(app) == "asgi":
        return ASGIAdapter(app)
    return WSGIAdapter(app, threads=threads, thread_queue=thread_queue)
