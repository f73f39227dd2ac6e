"""What every command's parser shares: argparse that exits 2 with one line, password options."""

from __future__ import annotations

import argparse
from typing import NoReturn

from mutls.errors import UsageError
from mutls.passwords import resolve_password


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line, exit 2) instead of printing usage."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def add_password_options(parser: argparse.ArgumentParser, what: str = "the password") -> None:
    """``--pass-file FILE`` and ``--pass-env VAR``: passwords kept off argv."""
    parser.add_argument(
        "--pass-file", metavar="FILE", help=f"read {what} from the first line of FILE"
    )
    parser.add_argument(
        "--pass-env", metavar="VAR", help=f"read {what} from environment variable VAR"
    )


def password_from(
    args: argparse.Namespace, value: str | None, prompt: str | None, *, confirm: bool = False
) -> str | None:
    """The password from ``value`` (argv), ``--pass-file``, ``--pass-env``, or a prompt."""
    return resolve_password(
        value=value,
        file=getattr(args, "pass_file", None),
        env=getattr(args, "pass_env", None),
        prompt=prompt,
        confirm=confirm,
    )


def add_ca_options(parser: argparse.ArgumentParser) -> None:
    """``-iv KEYFILE -ic CERTFILE`` (makecert's names for the issuer) and ``--db FILE``."""
    parser.add_argument(
        "-iv", "--ca-key", dest="ca_key", metavar="KEYFILE", required=True, help="the CA's key"
    )
    parser.add_argument(
        "-ic", "--ca-cert", dest="ca_cert", metavar="CERTFILE", required=True,
        help="the CA's certificate",
    )  # fmt: skip
    parser.add_argument(
        "--db",
        metavar="FILE",
        help="the CA's revocation record (default: beside its key, root.key -> root.revoked.json)",
    )
