"""``make soak``: valid mTLS clients keep being served while an attacker holds connections open.

A ``mutls serve`` subprocess on 127.0.0.1 (client certificate required, policy strict, the
bench's ASGI app) is measured in rounds. Each round: valid clients (threads, stdlib ``ssl``, a
new handshake per request) are measured alone, then while an attacker process holds many
half-handshakes (a partial ClientHello, then silence) and slowloris connections (a TLS
handshake, then request headers a byte a second), and uploads bodies in 1-byte chunks with a
valid certificate (refused past ``--min-chunk-average``), and makes handshakes back to back,
each with a new self-signed leaf and a ~96 KB chain (over ``--max-client-chain``: refused in
the handshake), TLS 1.3 and TLS 1.2 without tickets in turn (:mod:`flood`), reconnecting
whenever the server drops one; the attacker connects from 127.0.0.2, the valid clients from
127.0.0.1 (``--max-failures-per-source 0`` turns the server's failure budget per address off,
for comparison). Then the attacker stops reconnecting but keeps its sockets, and
the server must give back its file descriptors by its own timeouts; its RSS must come back near
the baseline too.

Printed: the valid clients' rate under attack as a fraction of their rate alone (target
>= 80%; fails the run only with ``--strict``), the uploads and handshakes refused, where the
CPU went in each phase (server, valid clients, attacker, in cores, and the machine's load: on
a small machine the load generator competes with the server), and the server's fds and RSS
before and after each attack. fds or RSS that do not come back fail the run. Last, a figure:
while one connection uploads 4 MiB in 1-byte chunks (the limit off, so that all of it is read),
how long requests on other connections wait (:mod:`chunks`). Counts and times are bounded and
everything started is stopped at the end.

    make soak                  # about 120 s (SOAK_S=600 for ten minutes)
    make soak-quick            # one short round, a quick check
    .venv/bin/python bench/soak.py --quick --uploaders 0 --flooders 0   # one attacker at a time
    .venv/bin/python bench/soak.py --quick --py-spy /tmp/spy            # profile the server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from chunks import client_context, fairness_probe, upload_until_closed  # noqa: E402
from chunks import describe as describe_fairness  # noqa: E402
from flood import OVER_THE_CAP, Flooder  # noqa: E402
from peers import REQUEST, free_port, probe, stop  # noqa: E402
from pki import BenchPKI, make_pki  # noqa: E402
from procstat import tree_cpu_seconds, tree_rss_bytes  # noqa: E402

#: a ClientHello's first bytes: a record of 512 bytes announced, 11 of them sent.
PARTIAL_CLIENT_HELLO = b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + b"\x00" * 5
SLOWLORIS_HEAD = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slow\r\nX-Pad: " + b"a" * 200
TARGET_RATIO = 0.80
#: where the attack comes from: another address than the valid clients' 127.0.0.1, as an
#: attacker on the network is (Linux answers for all of 127.0.0.0/8 on the loopback).
ATTACKER_ADDRESS = "127.0.0.2"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """One soak: its load, its attack, the server's timeouts, and what counts as recovered."""

    clients: int = 6
    half_handshakes: int = 300
    slowloris: int = 100
    #: connections uploading bodies in 1-byte chunks, one after another.
    uploaders: int = 1
    #: threads making distinct-leaf handshakes with ~96 KB chains (over --max-client-chain),
    #: TLS 1.3 and TLS 1.2 without tickets in turn, back to back (:mod:`flood`).
    flooders: int = 1
    #: the server's --max-failures-per-source (None: its default; 0: none, for comparison).
    failure_budget: int | None = None
    #: a control, not an attack: the attacker process burns this fraction of a core and
    #: touches no socket (run alone, it shows what the load generator's own CPU costs the
    #: valid clients on this machine).
    burn: float = 0.0
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
            "--timeout-header", str(settings.timeout_header),
            # as the bench's peers run: no line per request (thousands of them, under attack)
            "--no-access-log", *extra,
        ]  # fmt: skip
        if settings.failure_budget is not None:
            self.command += ["--max-failures-per-source", str(settings.failure_budget)]
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
        command += ["--flooders", str(settings.flooders), "--burn", str(settings.burn)]
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

    def cpu_seconds(self) -> float:
        """CPU time the attacker process has used so far."""
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> tuple[int, int, int, int]:
        """Close every socket and end the process: (uploads made, uploads refused, flood
        handshakes completed, flood handshakes refused)."""
        stop(self.process)
        assert self.process.stdout is not None
        counts = self.process.stdout.read().split()
        return (
            (int(counts[0]), int(counts[1]), int(counts[2]), int(counts[3]))
            if len(counts) == 4
            else (0, 0, 0, 0)
        )


async def _attack(
    port: int, half: int, slow: int, uploaders: int, flooders: int, files: BenchPKI
) -> None:
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
                answer = await upload_until_closed(port, with_certificate, None, ATTACKER_ADDRESS)
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
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1", port, local_addr=(ATTACKER_ADDRESS, 0)
                    )
                    writer.write(PARTIAL_CLIENT_HELLO)
                else:
                    reader, writer = await asyncio.open_connection(
                        "127.0.0.1",
                        port,
                        ssl=context,
                        server_hostname="localhost",
                        local_addr=(ATTACKER_ADDRESS, 0),
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
    with tempfile.TemporaryDirectory(prefix="mutls-flood-") as scratch:
        floods = []
        for number in range(flooders):
            (Path(scratch) / str(number)).mkdir()
            work = Path(scratch) / str(number)
            floods.append(Flooder(port, OVER_THE_CAP, work, ATTACKER_ADDRESS).start())
        started = sum(f.started for f in floods)
        while opened + started < half + slow + uploaders + flooders and not done.is_set():
            await asyncio.sleep(0.1)
            started = sum(f.started for f in floods)
        print("ready", flush=True)
        await asyncio.wait(
            [asyncio.ensure_future(e.wait()) for e in (holding, done)],
            return_when=asyncio.FIRST_COMPLETED,
        )
        # Holding still: the handshake in flight ends (or times out), no new one starts.
        counts = [await asyncio.to_thread(f.stop) for f in floods]
        await done.wait()
    for task in tasks:
        task.cancel()
    for writer in writers:
        writer.transport.abort()
    print(uploads, refused, sum(c[0] for c in counts), sum(c[1] for c in counts), flush=True)


#: the control's CPU burner: busy for FRACTION of every 10 ms, asleep for the rest.
BURNER = """import sys, time
busy = float(sys.argv[1]) * 0.01
while True:
    began = time.monotonic()
    while time.monotonic() - began < busy:
        pass
    time.sleep(0.01 - busy)
"""


def attacker_main(
    port: int,
    half: int,
    slow: int,
    uploaders: int,
    flooders: int,
    files: BenchPKI,
    burn: float = 0.0,
) -> int:
    """The attacker process (and its burner, when ``burn``)."""
    random.seed()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    burner = None
    if burn > 0:
        burner = subprocess.Popen([sys.executable, "-c", BURNER, str(min(burn, 1.0))])
    try:
        asyncio.run(_attack(port, half, slow, uploaders, flooders, files))
    finally:
        if burner is not None:
            burner.kill()
            burner.wait(10)
    return 0


# -- rounds ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cores:
    """Where the CPU went during one measured window, in cores (1.0: one core busy all along),
    and how loaded the machine was (its 1-minute load average at the end)."""

    server: float
    clients: float
    attacker: float
    load: float

    def __str__(self) -> str:
        return (
            f"CPU: server {self.server:.2f}, valid clients {self.clients:.2f}, attacker "
            f"{self.attacker:.2f} cores; machine load {self.load:.2f} on {os.cpu_count()} cores"
        )


@dataclass(frozen=True)
class Round:
    """What one round measured."""

    unloaded_rate: float
    attacked_rate: float
    attacked_ok: int
    attacked_failed: int
    uploads: int
    uploads_refused: int
    floods: int
    floods_refused: int
    attack_ready: bool
    peak_fds: int
    fds_before: int
    fds_after: int
    rss_before: int
    rss_after: int
    reclaim_s: float
    cores_alone: Cores
    cores_attacked: Cores

    @property
    def ratio(self) -> float:
        """Rate under attack over the rate alone."""
        return self.attacked_rate / self.unloaded_rate if self.unloaded_rate else 0.0

    @property
    def server_cpu_ratio(self) -> float:
        """The server's CPU under attack over its CPU alone: what the machine gave it."""
        alone = self.cores_alone.server
        return self.cores_attacked.server / alone if alone else 0.0

    @property
    def valid_share(self) -> float:
        """Valid requests per second of server CPU, under attack over alone: the part of the
        server's CPU the valid clients kept (ratio = server_cpu_ratio x valid_share)."""
        alone, attacked = self.cores_alone.server, self.cores_attacked.server
        if not (alone and attacked and self.unloaded_rate):
            return 0.0
        return (self.attacked_rate / attacked) / (self.unloaded_rate / alone)


def wait_for_fds(server: SoakServer, limit: int, timeout: float) -> tuple[int, float]:
    """Poll until the server holds at most ``limit`` fds (or ``timeout``): (fds, seconds)."""
    began = time.monotonic()
    while True:
        fds = server.fds()
        waited = time.monotonic() - began
        if fds <= limit or waited > timeout:
            return fds, waited
        time.sleep(0.2)


def measure(
    server: SoakServer, clients: ValidClients, seconds: float, attacker: Attacker | None = None
) -> tuple[float, int, int, Cores]:
    """The valid clients' rate over ``seconds`` (:meth:`ValidClients.measure`), and the CPU the
    server, the clients (this process) and the attacker used meanwhile."""
    began = time.monotonic()
    server0, clients0 = tree_cpu_seconds(server.pid), time.process_time()
    attacker0 = attacker.cpu_seconds() if attacker is not None else 0.0
    rate, ok, failed = clients.measure(seconds)
    took = time.monotonic() - began
    attacker1 = attacker.cpu_seconds() if attacker is not None else 0.0
    cores = Cores(
        (tree_cpu_seconds(server.pid) - server0) / took,
        (time.process_time() - clients0) / took,
        (attacker1 - attacker0) / took,
        os.getloadavg()[0],
    )
    return rate, ok, failed, cores


def run_round(
    server: SoakServer,
    clients: ValidClients,
    settings: Settings,
    files: BenchPKI,
    spy: Path | None = None,
) -> Round:
    """Valid clients alone, then under attack; then the attack holds still and the server must
    free what it held by its timeouts. ``spy``: py-spy records the server in both phases
    (``alone.txt``, ``attacked.txt`` there)."""
    with py_spy(server.pid, settings.unloaded_s, spy, "alone"):
        unloaded_rate, _ok, _failed, alone = measure(server, clients, settings.unloaded_s)
    clients.pause()
    fds_before, rss_before = server.fds(), server.rss()
    attacker = Attacker(server.port, settings, files)
    try:
        ready = attacker.wait_ready()
        peak = server.fds()
        with py_spy(server.pid, settings.attack_s, spy, "attacked"):
            rate, ok, failed, attacked = measure(server, clients, settings.attack_s, attacker)
        peak = max(peak, server.fds())
        clients.pause()
        attacker.hold()
        reclaim = max(settings.timeout_handshake, settings.timeout_header) + 5.0
        fds_after, waited = wait_for_fds(server, fds_before + settings.fd_slack, reclaim)
    finally:
        uploads, refused, floods, floods_refused = attacker.stop()
    # The server trims its heap a few seconds after its connection count drops.
    deadline = time.monotonic() + 8.0
    while not rss_recovered(rss_before, server.rss(), settings) and time.monotonic() < deadline:
        time.sleep(0.5)
    return Round(
        unloaded_rate, rate, ok, failed, uploads, refused, floods, floods_refused, ready, peak,
        fds_before, fds_after, rss_before, server.rss(), waited, alone, attacked,
    )  # fmt: skip


@contextlib.contextmanager
def py_spy(pid: int, seconds: float, directory: Path | None, name: str) -> Iterator[None]:
    """py-spy records ``pid`` for the block (``pip install py-spy`` into .venv), its collapsed
    stacks in ``directory/NAME.txt``; nothing when ``directory`` is ``None``."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid), "-f", "raw",
        "-o", str(directory / f"{name}.txt"), "-r", "200", "-d", str(int(seconds + 2)),
        "--nonblocking",
    ]  # fmt: skip
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        try:
            spy.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(10)


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
        f"{result.floods + result.floods_refused} distinct-leaf handshakes with "
        f"{OVER_THE_CAP[0].chain_kb} KB chains, {result.floods_refused} refused; "
        f"server fds peak {result.peak_fds}\n"
        f"  alone: {result.cores_alone}\n"
        f"  under attack: {result.cores_attacked}\n"
        f"  the ratio = the server's CPU under attack over alone {result.server_cpu_ratio:.0%} "
        f"(the machine) x the valid clients' share of it {result.valid_share:.0%} (the server)\n"
        f"  after: fds {result.fds_before} -> {result.fds_after} "
        f"(freed in {result.reclaim_s:.1f} s), "
        f"RSS {result.rss_before / MIB:.1f} -> {result.rss_after / MIB:.1f} MiB"
    )


def soak(
    seconds: float,
    settings: Settings,
    workdir: Path,
    out: TextIO = sys.stdout,
    spy: Path | None = None,
) -> tuple[bool, float, list[Round]]:
    """Rounds for about ``seconds``, each printed, then a summary and the fairness probe's
    line: (fds and RSS came back, the worst ratio, the rounds). ``spy``: py-spy records the
    server's first round there (:func:`py_spy`)."""
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
                first = spy if number == 1 else None
                results.append(run_round(server, clients, settings, files, first))
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
        f"summary: {rounds} round(s); rate under attack "
        f"{', '.join(f'{r.ratio:.0%}' for r in results)} of the unloaded rate, worst {worst:.0%} "
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
    parser.add_argument("--flooders", type=int, default=Settings.flooders)
    parser.add_argument("--probe-kib", type=int, default=Settings.probe_kib)
    parser.add_argument(
        "--max-failures-per-source",
        type=int,
        metavar="N",
        help="the server's failure budget per address (its default when not given; 0: none, "
        "to see what the budget buys)",
    )
    parser.add_argument(
        "--burn",
        type=float,
        default=Settings.burn,
        help="control: the attacker burns this fraction of a core (use with no attacker)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one short round (~45 s in all), for a quick check"
    )
    parser.add_argument("--py-spy", type=Path, help="record the server's first round here")
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--key-type", help=argparse.SUPPRESS)
    parser.add_argument("--attacker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attacker:
        files = BenchPKI.at(Path(args.pki), args.key_type)
        return attacker_main(
            args.port,
            args.half_handshakes,
            args.slowloris,
            args.uploaders,
            args.flooders,
            files,
            args.burn,
        )
    settings = Settings(
        clients=args.clients,
        half_handshakes=args.half_handshakes,
        slowloris=args.slowloris,
        uploaders=args.uploaders,
        flooders=args.flooders,
        burn=args.burn,
        probe_kib=args.probe_kib,
        failure_budget=args.max_failures_per_source,
    )
    if args.quick:
        settings = dataclasses.replace(
            settings, unloaded_s=8.0, attack_s=10.0, probe_kib=min(settings.probe_kib, 1024)
        )
        args.seconds = 1
    if not 0 < args.seconds <= 3600 or settings.half_handshakes + settings.slowloris > 900:
        parser.error("--seconds is 1-3600; at most 900 attack connections (under 1000/worker)")
    with tempfile.TemporaryDirectory(prefix="mutls-soak-") as workdir:
        recovered, worst, _rounds = soak(args.seconds, settings, Path(workdir), spy=args.py_spy)
    return 0 if recovered and (worst >= TARGET_RATIO or not args.strict) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
