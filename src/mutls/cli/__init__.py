"""The ``mutls`` command: one module per subcommand, each thin (parse, call the library, print).

Subcommands are imported only when run, so ``mutls makecert`` does not pay for the server.
A subcommand module exposes ``HELP`` (one line) and ``main(argv) -> int``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from mutls import __version__
from mutls.errors import MutlsError

#: command name -> module under mutls.cli; the order is the order of ``mutls --help``.
COMMANDS: dict[str, str] = {
    "makecert": "makecert",
    "pkcs12": "pkcs12",
    "inspect": "inspect",
    "revoke": "revoke",
    "makecrl": "makecrl",
    "certmgr": "certmgr",
    "serve": "serve",
    "xsp": "xsp",
    "get": "get",
    "doctor": "doctor",
    "demo": "demo",
}

USAGE = """usage: mutls COMMAND [options]

Client-certificate (mutual TLS) authentication for Python web apps, end to end.

Commands (the article's tool in brackets):
{commands}

Run `mutls COMMAND --help` for a command's options.
"""


def _command_lines() -> str:
    lines = []
    for name, module in COMMANDS.items():
        try:
            summary = importlib.import_module(f"mutls.cli.{module}").HELP
        except ImportError:
            continue
        lines.append(f"  {name:<10} {summary}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mutls`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE.format(commands=_command_lines()))
        return 0 if args else 2
    if args[0] in {"-V", "--version"}:
        print(f"mutls {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"mutls: unknown command {name!r} (see `mutls --help`)", file=sys.stderr)
        return 2
    try:
        # Inside: a command's import may load OpenSSL (the server's door), which can fail.
        module = importlib.import_module(f"mutls.cli.{COMMANDS[name]}")
        return int(module.main(args[1:]))
    except MutlsError as exc:
        details = getattr(exc, "details", None)  # the app's traceback, when its code failed
        if details:
            print(details.rstrip("\n"), file=sys.stderr)
        print(f"mutls {name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
