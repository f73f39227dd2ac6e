"""WebSocket echo load, for the bench's "WebSocket echo msgs/s" row (``loadgen.c`` speaks no
WebSocket; this is its counterpart, run the same way: pinned to the load core, ``start`` and
``stop ...`` lines at the edges of the measured window).

    python bench/wsload.py PORT CERT KEY CA CONNS DEPTH SIZE WARMUP_S DURATION_S

Opens CONNS ``wss://`` connections presenting the client certificate, then on each keeps DEPTH
text messages of SIZE bytes (at most 125) in flight: it writes DEPTH frames at once and waits
for their DEPTH echoes. A client frame is built once (masking is required of clients, not a
fresh key: the server unmasks whatever key it gets) and the echoes are counted by their bytes,
so the client does little besides TLS and the server is the one measured.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import LOAD_CORE, BenchError, Measurement, _finish, _Lines
from pki import BenchPKI
from procstat import tree_cpu_seconds


def text_frame(size: int) -> bytes:
    """A masked, final text frame of ``size`` bytes (``size`` ≤ 125)."""
    key = os.urandom(4)
    payload = b"m" * size
    return bytes([0x81, 0x80 | size]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@dataclass
class Counters:
    messages: int = 0
    errors: int = 0
    handshakes: int = 0
    stopping: bool = False


async def one_connection(
    port: int, context: ssl.SSLContext, depth: int, size: int, counters: Counters
) -> None:
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise BenchError(f"no WebSocket: {head[:60]!r}")
        counters.handshakes += 1
        burst = text_frame(size) * depth
        echo = 2 + size
        extra = 0
        while not counters.stopping:
            writer.write(burst)
            need = depth * echo - extra
            while need > 0:
                data = await reader.read(65536)
                if not data:
                    raise BenchError("the server closed a WebSocket")
                need -= len(data)
            extra = -need  # a ping's bytes, counted against the next burst
            counters.messages += depth
        writer.close()
    except (OSError, ssl.SSLError, BenchError, asyncio.IncompleteReadError) as error:
        counters.errors += 1
        print(f"connection failed: {error}", file=sys.stderr, flush=True)


async def main(argv: list[str]) -> None:
    port, cert, key, ca = int(argv[0]), argv[1], argv[2], argv[3]
    conns, depth, size = int(argv[4]), int(argv[5]), int(argv[6])
    warmup, duration = float(argv[7]), float(argv[8])
    if not 0 < size <= 125:
        raise SystemExit("SIZE: 1 to 125 bytes")
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    counters = Counters()
    tasks = [
        asyncio.create_task(one_connection(port, context, depth, size, counters))
        for _ in range(conns)
    ]
    await asyncio.sleep(warmup)
    first, started = counters.messages, time.monotonic()
    print("start", flush=True)
    await asyncio.sleep(duration)
    count, seconds = counters.messages - first, time.monotonic() - started
    print(
        f"stop requests={count} errors={counters.errors} handshakes={counters.handshakes} "
        f"resumed=0 bad_status=0 reconnects=0 seconds={seconds:.3f}",
        flush=True,
    )
    counters.stopping = True
    await asyncio.wait(tasks, timeout=5)


def measure_ws(
    port: int,
    files: BenchPKI,
    server_pid: int,
    *,
    connections: int,
    depth: int,
    size: int,
    warmup: float,
    duration: float,
) -> Measurement:
    """Echo load on ``port``; the server tree's CPU over the window (as ``load.measure``)."""
    import subprocess

    command = [
        "taskset", "-c", str(LOAD_CORE), sys.executable, str(Path(__file__).resolve()),
        str(port), str(files.client_cert), str(files.client_key), str(files.ca),
        str(connections), str(depth), str(size), str(warmup), str(duration),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    lines = _Lines(proc)
    deadline = time.monotonic() + warmup + duration + 30
    cpu_start = None
    try:
        while (line := lines.next(deadline)) is not None:
            if line == "start":
                cpu_start = tree_cpu_seconds(server_pid)
            elif line.startswith("stop") and cpu_start is not None:
                cpu = tree_cpu_seconds(server_pid) - cpu_start
                f = dict(word.split("=", 1) for word in line.split()[1:])
                return Measurement(
                    requests=int(f["requests"]),
                    errors=int(f["errors"]),
                    handshakes=int(f["handshakes"]),
                    resumed=0,
                    bad_status=0,
                    reconnects=0,
                    seconds=float(f["seconds"]),
                    server_cpu_seconds=cpu,
                )
        raise BenchError(f"the WebSocket load ended early: {_finish(proc)[:300]}")
    finally:
        _finish(proc)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(sys.argv[1:]))
