"""Distinct-leaf handshake floods: what a client that never repeats itself makes the server keep.

Each handshake brings a new self-signed leaf and a chain padded to a size (no trust needed:
under ``--verify strict`` every one gets a 403, after a complete handshake). For TLS 1.3 and for
TLS 1.2 without tickets (the server-side session cache), with chains over the server's
``--max-client-chain`` (~96 KB: refused in the handshake) and under it (~28 KB: accepted,
remembered for resumption), the server's RSS is read before the flood, at its peak (sampled
every 0.1 s), right after, and 30 s later. The bound (docs/security.md): growth ≤ 64 MiB, and
back within 10% of the pre-flood RSS for chains over the cap.

    .venv/bin/python bench/flood.py               # 1,000 handshakes per scenario
    .venv/bin/python bench/flood.py --count 200 --settle 5

Only 127.0.0.1; every count and wait is bounded; the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from peers import REQUEST  # noqa: E402
from pki import make_pki  # noqa: E402

MIB = 1024 * 1024
GROWTH_LIMIT = 64 * MIB
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Scenario:
    """One flood: the chain's size and the protocol."""

    chain_kb: int
    tls13: bool

    @property
    def name(self) -> str:
        version = "TLS 1.3" if self.tls13 else "TLS 1.2, no tickets"
        return f"{self.chain_kb} KB chains, {version}"


SCENARIOS = (Scenario(96, True), Scenario(96, False), Scenario(28, True), Scenario(28, False))
#: ``make soak``'s flood: chains over the cap, TLS 1.3 and TLS 1.2 without tickets in turn.
OVER_THE_CAP = (Scenario(96, True), Scenario(96, False))


def _certificate(key: ec.EllipticCurvePrivateKey, name: str, pad: int) -> x509.Certificate:
    subject = x509.Name.from_rfc4514_string(f"CN={name}")
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if pad:
        oid = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, bytes(pad)), False)
    return builder.sign(key, hashes.SHA256())


def padding(total_kb: int) -> bytes:
    """PEM certificates adding up to about ``total_kb`` KB of DER."""
    pieces = []
    left = total_kb * 1024
    while left > 0:
        size = min(left, 16 * 1024)
        key = ec.generate_private_key(ec.SECP256R1())
        pieces.append(_certificate(key, f"padding {len(pieces)}", size - 400))
        left -= size
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in pieces)


def handshake(
    port: int, scenario: Scenario, pad: bytes, workdir: Path, number: int, source: str = ""
) -> bool:
    """One handshake with a new self-signed leaf (``stranger NUMBER``) and the padding ``pad``,
    from the address ``source`` (any when empty), then one request: whether it completed
    (``False``: refused, in the handshake or after)."""
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(key, f"stranger {number}", 0)
    chain, key_file = workdir / "chain.pem", workdir / "leaf.key"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + pad)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if not scenario.tls13:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.options |= ssl.OP_NO_TICKET
    context.load_cert_chain(chain, key_file)
    try:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=TIMEOUT_S, source_address=(source, 0)
        ) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(REQUEST)
                tls.recv(4096)
        return True
    except (OSError, ssl.SSLError):
        return False


def flood(port: int, scenario: Scenario, count: int, workdir: Path) -> tuple[int, int]:
    """``count`` handshakes, each with a new leaf; (completed, refused)."""
    pad = padding(scenario.chain_kb)
    done = sum(handshake(port, scenario, pad, workdir, i) for i in range(count))
    return done, count - done


class PeakRSS:
    """The largest of ``rss()``, sampled every ``every`` seconds on a thread, in a block."""

    def __init__(self, rss: Callable[[], int], every: float = 0.1) -> None:
        self.rss = rss
        self.every = every
        self.bytes = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self.bytes = max(self.bytes, self.rss())

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.bytes = max(self.bytes, self.rss())


class Flooder:
    """Distinct-leaf handshakes back to back on a thread, the ``scenarios`` in turn, until
    :meth:`stop` (``make soak``'s handshake flood) from the address ``source`` (any when
    empty); its files live in ``workdir``."""

    def __init__(
        self, port: int, scenarios: Sequence[Scenario], workdir: Path, source: str = ""
    ) -> None:
        self.port = port
        self.source = source
        self.scenarios = tuple(scenarios)
        self.workdir = workdir
        self.done = self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Flooder:
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        """Whether a first handshake was tried."""
        return self.done + self.refused > 0

    def _run(self) -> None:
        pads = {s.chain_kb: padding(s.chain_kb) for s in self.scenarios}
        number = 0
        while not self._stop.is_set():
            scenario = self.scenarios[number % len(self.scenarios)]
            pad = pads[scenario.chain_kb]
            if handshake(self.port, scenario, pad, self.workdir, number, self.source):
                self.done += 1
            else:
                self.refused += 1
            number += 1

    def stop(self, timeout: float = TIMEOUT_S + 5) -> tuple[int, int]:
        """Stop after the handshake under way (bounded): (completed, refused)."""
        self._stop.set()
        self._thread.join(timeout)
        return self.done, self.refused


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="handshakes per scenario")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds before re-reading")
    args = parser.parse_args(argv)
    from soak import Settings, SoakServer  # here: soak imports this module for its attacker

    failed = False
    with tempfile.TemporaryDirectory(prefix="mutls-flood-") as tmp:
        work = Path(tmp)
        files = make_pki(work / "pki", "ecdsa-p256")
        print("| flood | handshakes completed / refused | RSS before | peak | right after | "
              f"{args.settle:g} s later | growth to the peak |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for scenario in SCENARIOS:
            # no failure budget: every handshake of the flood must reach the TLS engine
            no_budget = ("--max-failures-per-source", "0")
            with SoakServer(files, Settings(), work / "server.log", no_budget) as server:
                before = server.rss()
                with PeakRSS(server.rss) as peak:
                    done, refused = flood(server.port, scenario, args.count, work)
                after = server.rss()
                time.sleep(args.settle)
                later = server.rss()
            growth = max(peak.bytes, after) - before
            print(
                f"| {scenario.name} | {done} / {refused} | {before / MIB:.1f} MiB | "
                f"{peak.bytes / MIB:.1f} MiB | {after / MIB:.1f} MiB | {later / MIB:.1f} MiB "
                f"({(later - before) / before:+.1%}) | {growth / MIB:+.1f} MiB |"
            )
            if growth > GROWTH_LIMIT:
                failed = True
            if scenario.chain_kb > 32 and later > before * 1.10:
                failed = True
    print("bounds held" if not failed else "BOUND EXCEEDED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
