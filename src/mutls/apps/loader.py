"""Find the app a user names and tell WSGI from ASGI, as the frameworks' own servers do.

``module:attribute`` is imported from the current directory (or ``--app-dir``) as uvicorn
does. ``module:create_app()`` (gunicorn's spelling, literal arguments allowed) or ``--factory``
calls an app factory once; a function that needs no argument at all cannot be a WSGI or ASGI
app, so one named without ``()`` is called too, with a warning (uvicorn does the same).

When the app's own code fails (its import or its factory raises), the error carries the app's
traceback, which the command prints before its one line: the user needs it to fix their code.

An ASGI 3 app is a coroutine function of ``(scope, receive, send)`` (or an object whose
``__call__`` is one); anything else callable is taken as WSGI.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Literal

from mutls.errors import AppLoadError, UsageError

AppKind = Literal["wsgi", "asgi"]
log = logging.getLogger("mutls.app")
#: where the frames that are ours or the import machinery's, not the app's, come from.
_OURS = str(Path(__file__).resolve().parent.parent)
_IMPORTLIB = str(Path(importlib.__file__ or "importlib").parent)


def import_app(spec: str, app_dir: str | os.PathLike[str] = ".") -> Any:
    """Import ``module:attribute`` (dotted) with ``app_dir`` first on the path, and call it when
    written ``attribute(...)`` or when it is a function of no arguments (a factory)."""
    module_name, sep, target = spec.partition(":")
    if not sep or not module_name or not target:
        raise UsageError(f"{spec!r}: expected APP as module:attribute, e.g. myapp:app")
    attribute, call = _parse_target(spec, target)
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
        raise _failed(spec, f"importing {module_name} failed", exc) from None
    except Exception as exc:
        raise _failed(spec, f"importing {module_name} failed", exc) from None
    app: Any = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise UsageError(
                f"{spec}: module {module_name} has no attribute {attribute!r}"
            ) from None
    if call is None and _is_factory(app):
        log.warning(
            "%s: %s needs no argument, so it is taken as an app factory and called "
            "(say so with --factory or %s())",
            spec,
            attribute,
            spec,
        )
        call = ((), {})
    if call is not None:
        if not callable(app):
            raise UsageError(f"{spec}: {attribute} is not callable, so not an app factory")
        args, kwargs = call
        try:
            app = app(*args, **kwargs)
        except Exception as exc:
            raise _failed(spec, f"the app factory {attribute}() failed", exc) from None
        if not callable(app):
            raise UsageError(
                f"{spec}: {attribute}() returned {type(app).__name__}, not a WSGI or ASGI app"
            )
    elif not callable(app):
        raise UsageError(f"{spec}: {attribute} is not callable (not a WSGI or ASGI app)")
    return app


Call = tuple[tuple[Any, ...], dict[str, Any]]


def _parse_target(spec: str, target: str) -> tuple[str, Call | None]:
    """``attribute`` -> (attribute, None); ``create_app("prod", debug=False)`` -> (name,
    (args, kwargs)), arguments Python literals only (as gunicorn takes them)."""
    if "(" not in target:
        return target, None
    try:
        node = ast.parse(target.strip(), mode="eval").body
        if not isinstance(node, ast.Call):
            raise ValueError("not a call")
        name = ast.unparse(node.func)
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError("not a name")
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
        if len(kwargs) != len(node.keywords):
            raise ValueError("** is not a literal")
    except (SyntaxError, ValueError):
        raise UsageError(
            f"{spec!r}: expected module:factory() with literal arguments, "
            "e.g. myapp:create_app() or myapp:create_app('prod')"
        ) from None
    return name, (args, kwargs)


def _is_factory(app: Any) -> bool:
    """A plain function that needs no argument: a WSGI app needs 2, an ASGI app 3."""
    if not inspect.isfunction(app) or inspect.iscoroutinefunction(app):
        return False
    required = [
        p
        for p in inspect.signature(app).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required


def _failed(spec: str, what: str, exc: BaseException) -> AppLoadError:
    """The app's own error: one line, and its traceback from the app's first frame on."""
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and frames[0].filename.startswith((_OURS, _IMPORTLIB, "<frozen ")):
        frames = traceback.StackSummary.from_list(list(frames)[1:])
    details = "Traceback (most recent call last):\n" + "".join(frames.format())
    details += "".join(traceback.format_exception_only(exc))
    summary = "".join(traceback.format_exception_only(exc)).strip().splitlines()[-1]
    return AppLoadError(f"{spec}: {what}: {summary}", details)


def app_kind(app: Any) -> AppKind:
    """``asgi`` for an ASGI 3 app, else ``wsgi``."""
    if inspect.iscoroutinefunction(app):
        return "asgi"
    call = getattr(app, "__call__", None)  # noqa: B004 - the bound method is what we inspect
    if call is not None and inspect.iscoroutinefunction(call):
        return "asgi"
    return "wsgi"
