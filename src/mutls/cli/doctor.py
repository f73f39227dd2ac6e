"""``mutls doctor URL [--cert …]``: why was my client certificate not sent, or not accepted?"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from mutls.cli.common import ArgumentParser
from mutls.cli.get import add_client_options, config_from_args
from mutls.client.doctor import run_doctor

HELP = "explain, step by step, why a client certificate was not sent or not accepted"


def main(argv: Sequence[str]) -> int:
    """Run ``mutls doctor``: exit 0 when the server accepts (or needs no) certificate, 1 when a
    problem was found, 2 for bad input."""
    parser = ArgumentParser(
        prog="mutls doctor",
        description="Connect to URL with the certificate offered and report each step of the "
        "handshake with a verdict, the server's answer, a diagnosis and a fix.",
    )
    add_client_options(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    config = config_from_args(args, "doctor")
    report = run_doctor(args.url, config)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.render())
    return 1 if report.problem else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
