"""Drive the load generator (``loadgen.c``, built here with gcc) and read the server's cost.

The generator prints ``start`` when its warm-up ends and ``stop ...`` when its window closes; the
server tree's CPU time is read from ``/proc`` at each line, so CPU and requests cover one window.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pki import BenchPKI
from procstat import tree_cpu_seconds, tree_rss_bytes

SOURCE = Path(__file__).resolve().parent / "loadgen.c"
#: the core the load generator runs on; the server gets the other one.
LOAD_CORE = 1
SERVER_CORE = 0


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and why, in one line."""


def build_loadgen(directory: Path) -> Path:
    """Compile ``loadgen.c`` against the system OpenSSL (needs gcc and libssl-dev)."""
    if shutil.which("gcc") is None or not Path("/usr/include/openssl/ssl.h").exists():
        raise BenchError("gcc and libssl-dev are needed: apt-get install -y gcc libssl-dev")
    binary = directory / "loadgen"
    result = subprocess.run(
        ["gcc", "-O2", "-Wall", "-o", str(binary), str(SOURCE), "-lssl", "-lcrypto"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise BenchError(f"building {SOURCE.name} failed: {result.stderr.strip()[:500]}")
    return binary


@dataclass(frozen=True)
class Measurement:
    """One window of load against one server."""

    requests: int
    errors: int
    handshakes: int
    resumed: int
    bad_status: int
    reconnects: int
    seconds: float
    server_cpu_seconds: float

    @property
    def rate(self) -> float:
        """Successful requests per second."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        """The server tree's CPU time per successful request, in microseconds."""
        return self.server_cpu_seconds * 1e6 / self.requests if self.requests else float("nan")


def _fields(line: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in line.split()[1:] if "=" in word)


class _Lines:
    """Lines from a child's stdout, each read with a deadline (never blocks past it)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self._buffer = b""

    def next(self, deadline: float) -> str | None:
        """The next line, or None at end of file; BenchError past ``deadline``."""
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                raise BenchError("the load generator stopped answering (timeout)")
            chunk = os.read(self._fd, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def _spawn(
    binary: Path, port: int, files: BenchPKI, mode: str, *args: object
) -> subprocess.Popen[bytes]:
    command = [
        "taskset", "-c", str(LOAD_CORE), str(binary), str(port),
        str(files.client_cert), str(files.client_key), str(files.ca), mode, *map(str, args),
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _finish(proc: subprocess.Popen[bytes]) -> str:
    """Stop the generator (by its process group) and return what it said on stderr."""
    if proc.poll() is None:
        proc.kill()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    return err.decode(errors="replace").strip()


def measure(
    binary: Path,
    port: int,
    files: BenchPKI,
    server_pid: int,
    *,
    mode: str,
    connections: int,
    warmup: float,
    duration: float,
) -> Measurement:
    """Load the server in ``mode`` (new, resume, keepalive) and read its CPU over the window."""
    proc = _spawn(binary, port, files, mode, connections, warmup, duration)
    lines = _Lines(proc)
    deadline = time.monotonic() + warmup + duration + 30
    cpu_start = None
    try:
        while (line := lines.next(deadline)) is not None:
            if line == "start":
                cpu_start = tree_cpu_seconds(server_pid)
            elif line.startswith("stop") and cpu_start is not None:
                cpu = tree_cpu_seconds(server_pid) - cpu_start
                f = _fields(line)
                return Measurement(
                    requests=int(f["requests"]),
                    errors=int(f["errors"]),
                    handshakes=int(f["handshakes"]),
                    resumed=int(f["resumed"]),
                    bad_status=int(f["bad_status"]),
                    reconnects=int(f["reconnects"]),
                    seconds=float(f["seconds"]),
                    server_cpu_seconds=cpu,
                )
        raise BenchError(f"the load generator ended early: {_finish(proc)[:300]}")
    finally:
        _finish(proc)


@dataclass(frozen=True)
class IdleMemory:
    """Resident memory of a server tree before and while it holds ``open`` idle connections."""

    connections: int
    open: int
    errors: int
    rss_before: int
    rss_with_connections: int

    @property
    def bytes_per_connection(self) -> float:
        """The growth in resident memory divided by the connections still open."""
        return (self.rss_with_connections - self.rss_before) / self.open if self.open else 0.0


def measure_idle(
    binary: Path,
    port: int,
    files: BenchPKI,
    server_pid: int,
    *,
    connections: int,
    open_timeout: float,
    settle: float = 1.0,
) -> IdleMemory:
    """Open ``connections`` mTLS connections (a request on each), hold them, read the RSS."""
    rss_before = tree_rss_bytes(server_pid)
    proc = _spawn(binary, port, files, "idle", connections, 0, open_timeout)
    lines = _Lines(proc)
    try:
        line = lines.next(time.monotonic() + open_timeout + 30)
        if line is None or not line.startswith("ready"):
            raise BenchError(f"idle connections were not opened: {_finish(proc)[:300]}")
        time.sleep(settle)
        rss = tree_rss_bytes(server_pid)
        assert proc.stdin is not None
        proc.stdin.write(b"release\n")
        proc.stdin.flush()
        done = lines.next(time.monotonic() + 30) or ""
        f = _fields(line)
        still_open = int(_fields(done).get("open", f["open"]))
        return IdleMemory(
            connections=connections,
            open=min(int(f["open"]), still_open),
            errors=int(f["errors"]),
            rss_before=rss_before,
            rss_with_connections=rss,
        )
    finally:
        _finish(proc)
