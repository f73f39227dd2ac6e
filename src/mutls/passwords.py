"""Where passwords come from: argv, a file, an environment variable or a prompt.

Every command that takes a password takes it the same way, so that a secret never has to sit in
``ps`` output or shell history. OpenSSL's ``-passin`` spellings (``pass:X``, ``file:F``, ``env:V``,
``stdin``) are understood too.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from mutls.errors import PasswordError


def read_password_file(path: str | os.PathLike[str]) -> str:
    """Return the first line of ``path`` without its line ending."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PasswordError(f"{path}: cannot read password file: {exc.strerror}") from exc
    return text.splitlines()[0] if text else ""


def read_password_env(name: str) -> str:
    """Return the password held in environment variable ``name``."""
    try:
        return os.environ[name]
    except KeyError:
        raise PasswordError(f"environment variable {name} is not set (password expected)") from None


def prompt_password(prompt: str, *, confirm: bool = False) -> str:
    """Ask on the terminal; refuse (rather than hang) when there is none."""
    if not sys.stdin or not sys.stdin.isatty():
        raise PasswordError(
            f"{prompt.rstrip(': ')}: no password given and no terminal to ask on "
            "(give it with --pass-file FILE or --pass-env VAR)"
        )
    first = _ask(prompt)
    if confirm and _ask("Verifying - " + prompt) != first:
        raise PasswordError("passwords do not match")
    return first


def _ask(prompt: str) -> str:
    # Ctrl-D at the prompt is an answer ("none"), not a crash: getpass raises EOFError for it.
    try:
        return getpass.getpass(prompt)
    except EOFError:
        print(file=sys.stderr)  # the cursor is still after the prompt
        raise PasswordError(f"{prompt.rstrip(': ')}: no password typed (end of input)") from None


def parse_pass_spec(spec: str) -> str:
    """Resolve an OpenSSL-style ``-passin``/``-passout`` argument."""
    kind, sep, rest = spec.partition(":")
    if spec == "stdin":
        return sys.stdin.readline().rstrip("\r\n")
    if not sep:
        raise PasswordError(f"{spec!r}: expected pass:PASSWORD, file:PATH, env:VAR or stdin")
    if kind == "pass":
        return rest
    if kind == "file":
        return read_password_file(rest)
    if kind == "env":
        return read_password_env(rest)
    raise PasswordError(f"{spec!r}: expected pass:PASSWORD, file:PATH, env:VAR or stdin")


def resolve_password(
    *,
    value: str | None = None,
    file: str | None = None,
    env: str | None = None,
    prompt: str | None = None,
    confirm: bool = False,
) -> str | None:
    """Return the password from the first source given, in the order value, file, env, prompt.

    Giving more than one of ``value``, ``file`` and ``env`` is an error (which one would win is
    not obvious to a reader of the command line). With none given, prompt if ``prompt`` is set,
    else return ``None``.
    """
    given = [s for s in (value, file, env) if s is not None]
    if len(given) > 1:
        raise PasswordError("give the password one way only (argument, --pass-file or --pass-env)")
    if value is not None:
        return parse_pass_spec(value) if _looks_like_spec(value) else value
    if file is not None:
        return read_password_file(file)
    if env is not None:
        return read_password_env(env)
    if prompt is not None:
        return prompt_password(prompt, confirm=confirm)
    return None


def _looks_like_spec(value: str) -> bool:
    # Only explicit OpenSSL forms are specs; a bare word is the password itself (the article's
    # `-p12 poupou.p12 s3kr3t`).
    return value.startswith(("pass:", "file:", "env:"))
