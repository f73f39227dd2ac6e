"""``mutls xsp``: the article's XSP command line, on mutls's server.

``mutls xsp --https-client-require --port 4433 --p12file pollux.p12 --pkpwd s3kr3t`` works as
written; the test page answers at ``/cctest.aspx``. As XSP, it listens on every IPv4 address by
default, stops when Return is pressed (unless ``--nonstop``), and ``--https-client-*`` mean the
app sees invalid certificates (policy report). Trust comes from the ``Trust`` store
(``mutls certmgr --add -c Trust root.cer``) or ``--client-ca root.cer``.
"""

from __future__ import annotations

from collections.abc import Sequence

from mutls.cli.common import ArgumentParser
from mutls.cli.serve import add_server_options, config_from_args, serve

HELP = "the article's XSP web server: the test page over HTTPS with client certificates"


def build_parser() -> ArgumentParser:
    """XSP's options, plus mutls's TLS ones."""
    parser = ArgumentParser(prog="mutls xsp", description=HELP)
    add_server_options(parser, default_address="0.0.0.0")
    return parser


def main(argv: Sequence[str]) -> int:
    """``mutls xsp``."""
    args = build_parser().parse_args(list(argv))
    return serve(config_from_args(args), nonstop=args.nonstop)
