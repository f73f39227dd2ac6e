"""``mutls pkcs12``: ``openssl pkcs12`` for the article's conversions, with its spellings.

PKCS#12 to PEM (what the article runs for wget)::

    mutls pkcs12 -in poupou.p12 -out poupou.pem -nodes

and back (``-export``), modern (AES-256) or ``-legacy`` (3DES)::

    mutls pkcs12 -export -in cert.pem -inkey key.pem -certfile root.pem -out x.p12 -passout pass:X
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from mutls.cli.common import ArgumentParser
from mutls.errors import FileFormatError, PasswordError, PKIError, UsageError, WrongPasswordError
from mutls.passwords import parse_pass_spec, prompt_password
from mutls.pki.certs import load_certificates
from mutls.pki.files import PRIVATE, PUBLIC, read_file, write_file
from mutls.pki.identity import Identity, certificate_pem
from mutls.pki.keys import private_key_pem
from mutls.pki.pkcs12 import describe_p12_algorithms, p12_bytes, parse_p12

HELP = "convert PKCS#12 to PEM and back (openssl pkcs12)"


def build_parser() -> argparse.ArgumentParser:
    """openssl's single-dash spellings."""
    parser = ArgumentParser(prog="mutls pkcs12", description=HELP, add_help=False)
    add = parser.add_argument
    add("-in", dest="input", metavar="FILE", help="input: a PKCS#12 file (or PEM with -export)")
    add("-out", dest="output", metavar="FILE", help="output file (default: standard output)")
    add("-nodes", "-noenc", dest="nodes", action="store_true", help="do not encrypt the key")
    add("-passin", metavar="SPEC", help="input password: pass:X, file:PATH, env:VAR or stdin")
    add("-passout", metavar="SPEC", help="output password: pass:X, file:PATH, env:VAR or stdin")
    add("-password", metavar="SPEC", help="both -passin and -passout")
    add("-nokeys", action="store_true", help="write no private key")
    add("-nocerts", action="store_true", help="write no certificate")
    add("-clcerts", action="store_true", help="write only the client (leaf) certificate")
    add("-cacerts", action="store_true", help="write only the CA certificates")
    add("-info", action="store_true", help="say how the file is protected (on stderr)")
    add("-export", action="store_true", help="make a PKCS#12 file from PEM")
    add("-inkey", metavar="FILE", help="with -export: the private key, if not in -in")
    add("-certfile", metavar="FILE", help="with -export: more certificates (the chain)")
    add("-name", metavar="NAME", help="with -export: the friendly name (default: the CN)")
    add(
        "-legacy",
        "--legacy",
        dest="legacy",
        action="store_true",
        help="with -export: 3DES/SHA-1 for old Windows, macOS, Java 8 and Mono",
    )
    add("--force", action="store_true", help="overwrite -out if it exists")
    add("-help", "--help", action="help", help="show this help and exit")
    return parser


def main(argv: Sequence[str]) -> int:
    """Convert one way or the other."""
    args = build_parser().parse_args(argv)
    if args.input is None:
        raise UsageError("missing -in FILE")
    if args.password is not None:
        args.passin = args.passin or args.password
        args.passout = args.passout or args.password
    if args.output not in (None, "-") and not args.force and Path(args.output).exists():
        # before any password prompt or "MAC verified OK": nothing would come of them
        raise PKIError(f"{args.output}: already exists (remove it or pass --force to overwrite)")
    if args.export:
        return _export(args)
    return _import(args)


def _password(spec: str | None, prompt: str, flag: str, *, confirm: bool = False) -> str:
    if spec is not None:
        return parse_pass_spec(spec)
    if not sys.stdin or not sys.stdin.isatty():
        raise PasswordError(
            f"no password and no terminal to ask on: give {flag} pass:X|file:F|env:V"
        )
    return prompt_password(prompt, confirm=confirm)


def _import(args: argparse.Namespace) -> int:
    data = read_file(args.input, "PKCS#12 file")
    if b"-----BEGIN" in data:
        raise FileFormatError(
            f"{args.input}: is PEM, not PKCS#12 (to make a PKCS#12 from it, add -export)"
        )
    password = _password(args.passin, "Enter Import Password:", "-passin")
    try:
        key, cert, others = parse_p12(data, args.input, password)
    except WrongPasswordError as exc:
        raise WrongPasswordError(f"{exc} (check -passin)") from None
    print("MAC verified OK", file=sys.stderr)
    if args.info:
        for fact in describe_p12_algorithms(data):
            print(fact, file=sys.stderr)
    certs: list[x509.Certificate] = []
    if not args.nocerts:
        if cert is not None and not args.cacerts:
            certs.append(cert)
        if not args.clcerts:
            certs.extend(others)
    text = "".join(
        f"subject={c.subject.rfc4514_string()}\nissuer={c.issuer.rfc4514_string()}\n"
        + certificate_pem(c)
        for c in certs
    ).encode("ascii")
    with_key = key is not None and not args.nokeys
    if key is not None and with_key:
        secret = None
        if not args.nodes:
            secret = _password(
                args.passout, "Enter PEM pass phrase:", "-passout (or -nodes)", confirm=True
            )
            if not secret:
                raise UsageError("an empty pass phrase protects nothing: use -nodes instead")
        text += private_key_pem(key, secret)
    _emit(args, text, PRIVATE if with_key else PUBLIC)
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.output is None:
        raise UsageError("-export needs -out FILE (a PKCS#12 file is binary)")
    key_source = args.inkey or args.input
    if b"PRIVATE KEY" not in read_file(key_source, "private key") and args.inkey is None:
        raise UsageError(f"{args.input} holds no private key: give it with -inkey KEYFILE")
    secret_in = parse_pass_spec(args.passin) if args.passin is not None else None
    identity = Identity.from_pem(args.input, args.inkey, secret_in)
    if args.certfile:
        identity = identity.with_chain(load_certificates(args.certfile))
    password = _password(args.passout, "Enter Export Password:", "-passout", confirm=True)
    data = p12_bytes(
        identity.key,
        identity.certificate,
        identity.chain,
        password,
        legacy=args.legacy,
        friendly_name=args.name or identity.common_name,
    )
    _emit(args, data, PRIVATE)
    return 0


def _emit(args: argparse.Namespace, data: bytes, mode: int) -> None:
    if args.output is None or args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    write_file(args.output, data, mode=mode, overwrite=args.force)
