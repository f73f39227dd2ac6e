"""``mutls makecrl``: publish a CA's revocations as a signed CRL (``openssl ca -gencrl``).

    mutls makecrl -iv root.key -ic root.cer -out root.crl                 # full CRL
    mutls makecrl -iv root.key -ic root.cer -out root.crl --freshest http://ca.example/delta.crl
    mutls makecrl -iv root.key -ic root.cer -out delta.crl --delta        # since the last full

CRL numbers increase across full and delta CRLs; a delta names the last full CRL as its base.
The file is replaced atomically (a CRL is meant to be re-published), DER for ``.crl``/``.der``,
PEM otherwise.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mutls.cli.common import ArgumentParser, add_ca_options, add_password_options, password_from
from mutls.errors import UsageError, WrongPasswordError
from mutls.pki.authority import CertificateAuthority
from mutls.pki.crl import write_crl
from mutls.pki.revocation import RevocationDatabase, publish_crl

HELP = "publish the CA's revocations as a full or delta CRL (openssl ca -gencrl)"


def build_parser() -> argparse.ArgumentParser:
    """``mutls makecrl``'s options."""
    parser = ArgumentParser(prog="mutls makecrl", description=HELP)
    parser.add_argument("-out", "--out", dest="out", metavar="FILE", required=True,
                        help="the CRL file (DER for .crl/.der, else PEM); replaced")  # fmt: skip
    parser.add_argument(
        "--days", type=int, default=7, help="nextUpdate: days until the next CRL (default 7)"
    )
    parser.add_argument(
        "--delta", action="store_true", help="a delta CRL: what was revoked since the last full"
    )
    parser.add_argument(
        "--freshest",
        action="append",
        metavar="URL",
        help="where delta CRLs are published (Freshest CRL on full CRLs; remembered)",
    )
    add_ca_options(parser)
    add_password_options(parser, "the CA key's password")
    return parser


def main(argv: Sequence[str]) -> int:
    """Sign and write the next CRL."""
    args = build_parser().parse_args(list(argv))
    if args.delta and args.freshest:
        raise UsageError("--freshest goes on the full CRL; publish one without --delta")
    for url in args.freshest or ():
        if "://" not in url:
            raise UsageError(f"--freshest {url}: expected a URL, e.g. http://ca.example/delta.crl")
    ca = _load_ca(args)
    database = RevocationDatabase(ca.certificate, args.ca_key, args.db)
    published = publish_crl(
        ca, database, days=args.days, delta=args.delta, freshest=tuple(args.freshest or ())
    )
    write_crl(args.out, published.crl, overwrite=True)
    crl = published.crl
    until = crl.next_update_utc.strftime("%Y-%m-%d %H:%M UTC") if crl.next_update_utc else "-"
    issuer = ca.subject
    if published.base is None:
        what = f"full CRL #{published.number} of {issuer}, {published.entries} revoked"
    else:
        what = (
            f"delta CRL #{published.number} (base #{published.base}) of {issuer}, "
            f"{published.entries} revoked since #{published.base}"
        )
    print(f"wrote {args.out}: {what}, next update {until}")
    return 0


def _load_ca(args: argparse.Namespace) -> CertificateAuthority:
    try:
        return CertificateAuthority.load(args.ca_cert, None, key_path=args.ca_key)
    except WrongPasswordError:
        password = password_from(args, None, f"Password for {args.ca_key}: ")
        return CertificateAuthority.load(args.ca_cert, password, key_path=args.ca_key)
