"""``make soak``: valid mTLS clients keep being served while an attacker holds connections open.

A ``mutls serve`` subprocess on 127.0.0.1 (client certificate required, policy strict, the
bench's ASGI app) is measured in rounds. Each round: valid clients (threads, stdlib ``ssl``, a
new handshake per request) are measured alone, then while an attacker process holds many
half-handshakes (a partial ClientHello, then silence) and slowloris connections (a TLS
handshake, then request headers a byte a second), and uploads bodies in 1-byte chunks with a
valid certificate (refused past ``--min-chunk-average``), reconnecting whenever the server
drops one. Then the attacker stops reconnecting but keeps its sockets, and the server must give
back its file descriptors by its own timeouts; its RSS must come back near the baseline too.

Printed: the valid clients' rate under attack as a fraction of their rate alone (target
>= 80%; fails the run only with ``--strict``), the uploads refused, and the server's fds and RSS
before and after each attack. fds or RSS that do not come back fail the run. Last, a figure:
while one connection uploads 4 MiB in 1-byte chunks (the limit off, so that all of it is read),
how long requests on other connections wait (:mod:`chunks`). Counts and times are bounded and
everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from chunks import client_context, fairness_probe, upload_until_closed  # noqa: E402
from chunks import describe as describe_fairness  # noqa: E402
from peers import free_port, probe, stop  # noqa: E402
from pki import BenchPKI, make_pki  # noqa: E402
from procstat import tree_rss_bytes  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
#: a ClientHello's first bytes: a record of 512 bytes announced, 11 of them sent.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + b"\x00" * 5
SLOWLORIS_HEAD = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\nX-Pad: " + b"a" * 200
TARGET_RATIO = 0.80
MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """One soak: its load, its attack, the server's timeouts, and what counts as recovered."""

    clients: int = 6
    half_handshakes: int = 300
    slowloris: int = 100
    #: connections uploading bodies in 1-byte chunks, one after another.
    uploaders: int = 1
    #: KiB the fairness probe uploads in 1-byte chunks (0: no probe).
    probe_kib: int = 4096
    unloaded_s: float = 20.0
    attack_s: float = 25.0
    timeout_handshake: float = 10.0  # mutls serve's defaults: the soak tests what ships
    timeout_header: float = 15.0
    fd_slack: int = 2
    rss_slack_bytes: int = 16 * MIB
    rss_slack_ratio: float = 0.25


# -- the server --------------------------------------------------------------------------------


class SoakServer:
    """``mutls serve`` on a free 127.0.0.1 port, stopped (its process group) on exit."""

    def __init__(
        self, files: BenchPKI, settings: Settings, log: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.files = files
        self.port = free_port()
        self.log = log
        self.command = [
            sys.executable, "-m", "mutls", "serve", "asgi_app:app", "--app-dir", str(BENCH_DIR),
            "--address", "127.0.0.1", "--port", str(self.port),
            "--cert", str(files.server_cert), "--key", str(files.server_key),
            "--client-cert", "require", "--verify", "strict", "--client-ca", str(files.ca),
            "--timeout-handshake", str(settings.timeout_handshake),
            "--timeout-header", str(settings.timeout_header), *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SoakServer:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"mutls serve exited at start; see {self.log}")
            with contextlib.suppress(OSError, ssl.SSLError):
                if " 200 " in probe(self.files, self.port) + " ":
                    return self
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"mutls serve did not answer within 30 s; see {self.log}")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def fds(self) -> int:
        """Open file descriptors of the server."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss(self) -> int:
        """Resident memory of the server, in bytes."""
        return tree_rss_bytes(self.pid)


# -- valid clients -----------------------------------------------------------------------------


class ValidClients:
    """Threads that each make one mTLS request per new connection, back to back."""

    def __init__(self, files: BenchPKI, port: int, count: int) -> None:
        self.context = ssl.create_default_context(cafile=str(files.ca))
        self.context.load_cert_chain(str(files.client_cert), str(files.client_key))
        self.port = port
        self.ok = self.failed = 0
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._stop = threading.Event()
        self._busy = 0
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._running.wait(0.1):
                continue
            with self._lock:
                self._busy += 1
            try:
                ok = self._request()
            finally:
                with self._lock:
                    self._busy -= 1
            with self._lock:
                if ok:
                    self.ok += 1
                else:
                    self.failed += 1

    def _request(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw:
                with self.context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(REQUEST)
                    data = b""
                    while chunk := tls.recv(65536):
                        data += chunk
            return data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"ok")
        except (OSError, ssl.SSLError):
            return False

    def measure(self, seconds: float) -> tuple[float, int, int]:
        """Run for ``seconds``: (successful requests per second, successes, failures)."""
        with self._lock:
            ok0, failed0 = self.ok, self.failed
        began = time.monotonic()
        self._running.set()
        time.sleep(seconds)
        with self._lock:
            ok, failed = self.ok - ok0, self.failed - failed0
        return ok / (time.monotonic() - began), ok, failed

    def pause(self, timeout: float = 15.0) -> None:
        """Stop making requests and wait for those in flight (bounded)."""
        self._running.clear()
        deadline = time.monotonic() + timeout
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Stop the threads."""
        self._running.clear()
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


# -- the attacker (its own process: its work must not slow the valid clients' threads) --------


class Attacker:
    """``soak.py --attacker``: holds the attack's connections; SIGUSR1 holds still, SIGTERM
    closes everything."""

    def __init__(self, port: int, settings: Settings, files: BenchPKI) -> None:
        command = [sys.executable, __file__, "--attacker", "--port", str(port)]
        command += ["--half-handshakes", str(settings.half_handshakes)]
        command += ["--slowloris", str(settings.slowloris), "--uploaders", str(settings.uploaders)]
        command += ["--pki", str(files.ca.parent), "--key-type", files.key_type]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Whether every attack connection was opened (within ``timeout``)."""
        assert self.process.stdout is not None
        ready = threading.Event()

        def read() -> None:
            assert self.process.stdout is not None
            if self.process.stdout.readline().strip() == b"ready":
                ready.set()

        threading.Thread(target=read, daemon=True).start()
        return ready.wait(timeout)

    def hold(self) -> None:
        """Stop reconnecting; keep the sockets open (the server's timeouts must free them)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGUSR1)

    def stop(self) -> tuple[int, int]:
        """Close every socket and end the process: (uploads made, uploads refused)."""
        stop(self.process)
        assert self.process.stdout is not None
        counts = self.process.stdout.read().split()
        return (int(counts[0]), int(counts[1])) if len(counts) == 2 else (0, 0)


async def _attack(port: int, half: int, slow: int, uploaders: int, files: BenchPKI) -> None:
    loop = asyncio.get_running_loop()
    holding, done = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, holding.set)
    loop.add_signal_handler(signal.SIGTERM, done.set)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the attacker needs no trust, and sends no certificate
    writers: set[asyncio.StreamWriter] = set()
    opened = 0
    uploads = refused = 0
    with_certificate = client_context(files)

    async def upload() -> None:
        """Bodies of 1-byte chunks, one after another, until the attack holds still."""
        nonlocal opened, uploads, refused
        first = True
        while not holding.is_set():
            try:
                answer = await upload_until_closed(port, with_certificate, None)
            except (OSError, ssl.SSLError):
                await asyncio.sleep(0.5)
                continue
            opened += first
            first = False
            uploads += 1  # refused: a 400, or only the close (the answer lost to a reset)
            refused += not answer.startswith(b"HTTP/1.1 200 ")

    async def one(kind: str) -> None:
        nonlocal opened
        while not holding.is_set():
            try:
                if kind == "half":
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(PARTIAL_CLIENT_HELLO)
                else:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", port, ssl=context, server_hostname="localhost"
                    )
            except (OSError, ssl.SSLError):
                await asyncio.sleep(0.5)
                continue
            opened += 1
            writers.add(writer)
            ended = asyncio.ensure_future(reader.read())  # the server's answer, then its close
            for byte in SLOWLORIS_HEAD if kind == "slow" else b"":
                if holding.is_set() or ended.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.wait([ended], timeout=1.0)
            with contextlib.suppress(OSError, ssl.SSLError):
                await ended
            if not holding.is_set():
                writers.discard(writer)
                writer.close()

    tasks = [asyncio.create_task(one("half")) for _ in range(half)]
    tasks += [asyncio.create_task(one("slow")) for _ in range(slow)]
    tasks += [asyncio.create_task(upload()) for _ in range(uploaders)]
    while opened < half + slow + uploaders and not done.is_set():
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    await done.wait()
    for task in tasks:
        task.cancel()
    for writer in writers:
        writer.transport.abort()
    print(uploads, refused, flush=True)


def attacker_main(port: int, half: int, slow: int, uploaders: int, files: BenchPKI) -> int:
    """The attacker process."""
    random.seed()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_attack(port, half, slow, uploaders, files))
    return 0


# -- rounds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Round:
    """What one round measured."""

    unloaded_rate: float
    attacked_rate: float
    attacked_ok: int
    attacked_failed: int
    uploads: int
    uploads_refused: int
    attack_ready: bool
    peak_fds: int
    fds_before: int
    fds_after: int
    rss_before: int
    rss_after: int
    reclaim_s: float

    @property
    def ratio(self) -> float:
        """Rate under attack over the rate alone."""
        return self.attacked_rate / self.unloaded_rate if self.unloaded_rate else 0.0


def wait_for_fds(server: SoakServer, limit: int, timeout: float) -> tuple[int, float]:
    """Poll until the server holds at most ``limit`` fds (or ``timeout``): (fds, seconds)."""
    began = time.monotonic()
    while True:
        fds = server.fds()
        waited = time.monotonic() - began
        if fds <= limit or waited > timeout:
            return fds, waited
        time.sleep(0.2)


def run_round(
    server: SoakServer, clients: ValidClients, settings: Settings, files: BenchPKI
) -> Round:
    """Valid clients alone, then under attack; then the attack holds still and the server must
    free what it held by its timeouts."""
    unloaded_rate, _ok, _failed = clients.measure(settings.unloaded_s)
    clients.pause()
    fds_before, rss_before = server.fds(), server.rss()
    attacker = Attacker(server.port, settings, files)
    try:
        ready = attacker.wait_ready()
        peak = server.fds()
        rate, ok, failed = clients.measure(settings.attack_s)
        peak = max(peak, server.fds())
        clients.pause()
        attacker.hold()
        reclaim = max(settings.timeout_handshake, settings.timeout_header) + 5.0
        fds_after, waited = wait_for_fds(server, fds_before + settings.fd_slack, reclaim)
    finally:
        uploads, refused = attacker.stop()
    # The server trims its heap a few seconds after its connection count drops.
    deadline = time.monotonic() + 8.0
    while not rss_recovered(rss_before, server.rss(), settings) and time.monotonic() < deadline:
        time.sleep(0.5)
    return Round(
        unloaded_rate, rate, ok, failed, uploads, refused, ready, peak, fds_before, fds_after,
        rss_before, server.rss(), waited,
    )  # fmt: skip


def rss_recovered(before: int, after: int, settings: Settings) -> bool:
    """Whether ``after`` is within the tolerance of ``before``."""
    return after <= before + max(settings.rss_slack_bytes, int(before * settings.rss_slack_ratio))


def describe(number: int, result: Round, settings: Settings) -> str:
    """One round in a few lines."""
    return (
        f"round {number}: valid clients {result.unloaded_rate:.1f} req/s alone, "
        f"{result.attacked_rate:.1f} req/s under attack = {result.ratio:.0%} "
        f"(target >= {TARGET_RATIO:.0%}); {result.attacked_ok} served, "
        f"{result.attacked_failed} failed during the attack\n"
        f"  attack: {settings.half_handshakes} half-handshakes + {settings.slowloris} "
        f"slowloris held{'' if result.attack_ready else ' (not all opened in time)'}; "
        f"{result.uploads} uploads in 1-byte chunks, {result.uploads_refused} refused; "
        f"server fds peak {result.peak_fds}\n"
        f"  after: fds {result.fds_before} -> {result.fds_after} "
        f"(freed in {result.reclaim_s:.1f} s), "
        f"RSS {result.rss_before / MIB:.1f} -> {result.rss_after / MIB:.1f} MiB"
    )


def soak(
    seconds: float, settings: Settings, workdir: Path, out: TextIO = sys.stdout
) -> tuple[bool, float, list[Round]]:
    """Rounds for about ``seconds``, each printed, then a summary and the fairness probe's
    line: (fds and RSS came back, the worst ratio, the rounds)."""
    per_round = settings.unloaded_s + settings.attack_s + settings.timeout_header + 10
    rounds = max(1, int(seconds // per_round))
    files = make_pki(workdir / "pki", "ecdsa-p256")
    results: list[Round] = []
    with SoakServer(files, settings, workdir / "server.log") as server:
        clients = ValidClients(files, server.port, settings.clients)
        try:
            clients.measure(2.0)  # warm-up
            clients.pause()
            first_fds, first_rss = server.fds(), server.rss()
            for number in range(1, rounds + 1):
                results.append(run_round(server, clients, settings, files))
                print(describe(number, results[-1], settings), file=out, flush=True)
        finally:
            clients.close()
        last_fds, last_rss = server.fds(), server.rss()
    worst = min(r.ratio for r in results)
    fds_ok = all(r.fds_after <= r.fds_before + settings.fd_slack for r in results)
    rss_ok = all(rss_recovered(r.rss_before, r.rss_after, settings) for r in results)
    growth_ok = last_fds <= first_fds + settings.fd_slack and rss_recovered(
        first_rss, last_rss, settings
    )
    print(
        f"summary: {rounds} round(s); worst rate under attack {worst:.0%} of the unloaded "
        f"rate (target >= {TARGET_RATIO:.0%}: {'met' if worst >= TARGET_RATIO else 'MISSED'}); "
        f"fds {first_fds} at start, {last_fds} at the end "
        f"({'back to baseline' if fds_ok else 'NOT back to baseline'}); "
        f"RSS {first_rss / MIB:.1f} -> {last_rss / MIB:.1f} MiB "
        f"({'within tolerance' if rss_ok and growth_ok else 'GREW'})",
        file=out,
        flush=True,
    )
    if settings.probe_kib:
        unlimited = ("--min-chunk-average", "0")
        with SoakServer(files, settings, workdir / "probe.log", unlimited) as server:
            fairness = fairness_probe(files, server.port, settings.probe_kib)
        print(describe_fairness(fairness), file=out, flush=True)
    return fds_ok and rss_ok and growth_ok, worst, results


def main(argv: list[str]) -> int:
    """``soak.py --seconds N`` (or, internally, ``--attacker``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120, help="about how long (120)")
    parser.add_argument("--strict", action="store_true", help="fail when the ratio < 80%%")
    parser.add_argument("--clients", type=int, default=Settings.clients, help="client threads")
    parser.add_argument("--half-handshakes", type=int, default=Settings.half_handshakes)
    parser.add_argument("--slowloris", type=int, default=Settings.slowloris)
    parser.add_argument("--uploaders", type=int, default=Settings.uploaders)
    parser.add_argument("--probe-kib", type=int, default=Settings.probe_kib)
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--key-type", help=argparse.SUPPRESS)
    parser.add_argument("--attacker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attacker:
        files = BenchPKI.at(Path(args.pki), args.key_type)
        return attacker_main(args.port, args.half_handshakes, args.slowloris, args.uploaders, files)
    settings = Settings(
        clients=args.clients,
        half_handshakes=args.half_handshakes,
        slowloris=args.slowloris,
        uploaders=args.uploaders,
        probe_kib=args.probe_kib,
    )
    if not 0 < args.seconds <= 3600 or settings.half_handshakes + settings.slowloris > 900:
        parser.error("--seconds is 1-3600; at most 900 attack connections (under 1000/worker)")
    with tempfile.TemporaryDirectory(prefix="mutls-soak-") as workdir:
        recovered, worst, _rounds = soak(args.seconds, settings, Path(workdir))
    return 0 if recovered and (worst >= TARGET_RATIO or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
