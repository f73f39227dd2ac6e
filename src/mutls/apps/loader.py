"""Find the app a user names as ``module:attribute`` and tell WSGI from ASGI.

Imported from the current directory (or ``--app-dir``) as uvicorn does. An ASGI 3 app is a
coroutine function of ``(scope, receive, send)`` (or an object whose ``__call__`` is one);
anything else callable is taken as WSGI.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any, Literal

from mutls.errors import UsageError

AppKind = Literal["wsgi", "asgi"]


def import_app(spec: str, app_dir: str | os.PathLike[str] = ".") -> Any:
    """Import ``module:attribute`` (attribute may be dotted) with ``app_dir`` first on the path."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise UsageError(f"{spec!r}: expected APP as module:attribute, e.g. myapp:app")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(
                f"{spec}: no module {module_name!r} in {directory} (change it with --app-dir)"
            ) from None
        raise UsageError(f"{spec}: importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise UsageError(f"{spec}: importing {module_name} failed: {exc!r}") from exc
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise UsageError(
                f"{spec}: module {module_name} has no attribute {attribute!r}"
            ) from None
    if not callable(app):
        raise UsageError(f"{spec}: {attribute} is not callable (not a WSGI or ASGI app)")
    return app


def app_kind(app: Any) -> AppKind:
    """``asgi`` for an ASGI 3 app, else ``wsgi``."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = getattr(app, "__call__", None)  # noqa: B004 - the bound method is what we inspect
    if call is not None and inspect.iscoroutinefunction(call):
        return "asgi"
    return "wsgi"
