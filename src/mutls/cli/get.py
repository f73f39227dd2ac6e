"""``mutls get URL [P12 [PASSWORD]]``: fetch a page with a client certificate (hwr2.exe, wget)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mutls.cli.common import ArgumentParser, add_password_options, password_from
from mutls.client.connection import ClientConfig
from mutls.client.errors import ClientTLSError
from mutls.client.fetch import fetch, handshake_summary
from mutls.client.http import Request
from mutls.client.keylog import keylog_path
from mutls.client.server_trust import ServerTrust
from mutls.errors import UsageError, WrongPasswordError
from mutls.pki.identity import Identity

HELP = "fetch an HTTPS page with a client certificate (the article's wget and hwr2.exe)"

INSECURE_WARNING = (
    "warning: --insecure: the server's certificate is not checked; anyone in the middle can "
    "read and change this exchange"
)


def add_client_options(parser: argparse.ArgumentParser) -> None:
    """The certificate, password, trust and key-log options ``get`` and ``doctor`` share."""
    parser.add_argument("url", metavar="URL", help="https://host[:port]/path")
    parser.add_argument("p12", nargs="?", metavar="P12", help="client certificate (as hwr2.exe)")
    parser.add_argument("password", nargs="?", metavar="PASSWORD", help="password of P12")
    parser.add_argument(
        "--cert", metavar="FILE", help="client certificate: P12, or PEM (with its key inside)"
    )
    parser.add_argument("--key", metavar="FILE", help="private key of a PEM/DER --cert")
    parser.add_argument("--pass", dest="pass_value", metavar="PASSWORD", help="its password")
    add_password_options(parser, "the certificate's password")
    parser.add_argument(
        "--cacert", metavar="FILE", help="trust only these CAs for the server (PEM or DER)"
    )
    parser.add_argument(
        "-k", "--insecure", action="store_true", help="do not check the server's certificate"
    )
    parser.add_argument(
        "--keylog",
        metavar="FILE",
        help="append TLS secrets for Wireshark (NSS key-log format; default $SSLKEYLOGFILE)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="SECONDS", help="per step (default 30)"
    )


def load_identity(args: argparse.Namespace) -> Identity | None:
    """The client identity from ``P12 [PASSWORD]`` or ``--cert``/``--key``, asking when needed."""
    if args.p12 is not None and args.cert is not None:
        raise UsageError("give the certificate once: as the P12 argument or with --cert")
    if args.password is not None and args.pass_value is not None:
        raise UsageError("give the password once: as the PASSWORD argument or with --pass")
    path = args.p12 if args.p12 is not None else args.cert
    if path is None:
        if args.key is not None:
            raise UsageError("--key needs --cert (the certificate that goes with the key)")
        return None
    value = args.password if args.password is not None else args.pass_value
    password = password_from(args, value, None)
    try:
        return Identity.load(path, password, args.key)
    except WrongPasswordError:
        if password is not None:
            raise
    # A protected file and no password given: ask (or say how to give it, without a terminal).
    asked = password_from(args, None, f"Password for {path}: ")
    return Identity.load(path, asked, args.key)


def config_from_args(args: argparse.Namespace, command: str) -> ClientConfig:
    """Build the :class:`ClientConfig` from the shared options."""
    if args.timeout <= 0:
        raise UsageError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    identity = load_identity(args)
    if args.insecure:
        if args.cacert is not None:
            raise UsageError("--insecure and --cacert contradict each other: choose one")
        print(f"mutls {command}: {INSECURE_WARNING}", file=sys.stderr)
    return ClientConfig(
        identity=identity,
        trust=ServerTrust.resolve(args.cacert),
        insecure=args.insecure,
        keylog=keylog_path(args.keylog),
        timeout=args.timeout,
    )


def _build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="mutls get",
        description="Fetch URL over HTTPS, with a client certificate when one is given. The body "
        "goes to stdout. Exit 0 for success, 1 for an HTTP error status, 2 for bad input, "
        "3 for a TLS failure, 4 for a connection failure.",
    )
    add_client_options(parser)
    parser.add_argument("-X", "--request", metavar="METHOD", help="HTTP method (default GET)")
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'NAME: VALUE'", help="repeatable"
    )
    parser.add_argument("-d", "--data", metavar="DATA", help="request body (@FILE reads a file)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the body to FILE")
    parser.add_argument("-i", "--include", action="store_true", help="show response headers")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="handshake summary and headers on stderr"
    )
    return parser


def _request(args: argparse.Namespace) -> Request:
    headers = []
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"-H {header!r}: expected 'Name: value'")
        headers.append((name.strip(), value.strip()))
    body = None
    if args.data is not None:
        if args.data.startswith("@"):
            try:
                body = Path(args.data[1:]).read_bytes()
            except OSError as exc:
                raise UsageError(f"-d {args.data}: cannot read: {exc.strerror}") from None
        else:
            body = args.data.encode("utf-8")
    method = args.request or ("POST" if body is not None else "GET")
    return Request(args.url, method.upper(), tuple(headers), body)


def main(argv: Sequence[str]) -> int:
    """Run ``mutls get``."""
    args = _build_parser().parse_args(argv)
    request = _request(args)
    config = config_from_args(args, "get")
    try:
        exchange = fetch(request, config)
    except ClientTLSError as error:
        if args.verbose and error.record is not None:
            for line in handshake_summary(error.record, config.identity):
                print(line, file=sys.stderr)
        raise
    response = exchange.response
    if args.verbose:
        for line in handshake_summary(exchange.record, config.identity):
            print(line, file=sys.stderr)
        print("< " + response.head().rstrip().replace("\r\n", "\n< "), file=sys.stderr)
    out = sys.stdout.buffer
    if args.include:
        out.write(response.head().encode("latin-1"))
    if args.output is not None:
        try:
            Path(args.output).write_bytes(response.body)
        except OSError as exc:
            raise UsageError(f"-o {args.output}: cannot write: {exc.strerror}") from None
    else:
        out.write(response.body)
    out.flush()
    if response.status >= 400:
        hint = ""
        record = exchange.record
        if record.certificate_requested and not record.certificate_sent:
            hint = " (the server asked for a client certificate and none was given: add --cert)"
        print(f"mutls get: {response.status_line}{hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))


__all__ = ["HELP", "add_client_options", "config_from_args", "load_identity", "main"]
