"""Request bodies in 1-byte chunks, for ``make soak``: the attacker's uploader, and the probe
that measures how long other connections wait while such a body is read.

A body in 1-byte chunks costs the server one parser callback per byte, six bytes on the wire
for one of body: the work, not the size, is the attack. ``mutls serve`` refuses such a body
past ``--min-chunk-average`` (the uploader sees 400s), and feeds the parser a bounded amount
per turn of its event loop, so other connections are served meanwhile (the probe measures it
with the limit off, so that the whole body is read).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from dataclasses import dataclass

from peers import probe
from pki import BenchPKI

HEAD = (
    b"POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
#: 1 KiB of body, 6 KiB on the wire.
KIB_OF_CHUNKS = b"1\r\nx\r\n" * 1024


def client_context(files: BenchPKI) -> ssl.SSLContext:
    """mTLS with the bench's client certificate (the soak's server requires one)."""
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.client_cert), str(files.client_key))
    return context


async def upload_until_closed(
    port: int, context: ssl.SSLContext, kib: int | None, source: str = ""
) -> bytes:
    """Send ``kib`` KiB of body in 1-byte chunks (``None``: until the server closes) from the
    address ``source`` (any when empty); the server's answer (``b""`` when it only closed)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        port,
        ssl=context,
        server_hostname="localhost",
        local_addr=(source, 0) if source else None,
    )
    answer = asyncio.ensure_future(reader.read())  # until the server closes
    try:
        writer.write(HEAD)
        sent = 0
        while not answer.done() and (kib is None or sent < kib):
            writer.write(KIB_OF_CHUNKS)
            sent += 1
            await writer.drain()
            await asyncio.sleep(0)  # drain() need not yield: let the server's close arrive
        if not answer.done():
            writer.write(b"0\r\n\r\n")
    except (OSError, ssl.SSLError):
        pass  # refused and closed while we wrote
    try:
        return await asyncio.wait_for(answer, 30)
    except (OSError, ssl.SSLError, TimeoutError):
        return b""
    finally:
        writer.transport.abort()


@dataclass(frozen=True)
class Fairness:
    """What the probe measured."""

    upload_kib: int
    upload_s: float
    upload_status: str
    answered: int
    failed: int
    worst_s: float


def fairness_probe(files: BenchPKI, port: int, kib: int) -> Fairness:
    """Upload ``kib`` KiB in 1-byte chunks on one connection while another thread makes mTLS
    requests (a new connection each) back to back; how many were answered, the slowest."""
    done = threading.Event()
    status: list[str] = []

    def upload() -> None:
        try:
            answer = asyncio.run(upload_until_closed(port, client_context(files), kib))
            status.append(answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed")
        finally:
            done.set()

    began = time.monotonic()
    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    answered = failed = 0
    worst = 0.0
    while not done.is_set():
        asked = time.monotonic()
        try:
            ok = " 200 " in probe(files, port, timeout=30) + " "
        except (OSError, ssl.SSLError):
            ok = False
        worst = max(worst, time.monotonic() - asked)
        answered, failed = answered + ok, failed + (not ok)
        done.wait(0.05)
    upload_s = time.monotonic() - began
    uploader.join(30)
    return Fairness(kib, upload_s, status[0] if status else "?", answered, failed, worst)


def describe(result: Fairness) -> str:
    """The probe's figures in one line."""
    return (
        f"fairness (--min-chunk-average 0): {result.upload_kib} KiB in 1-byte chunks "
        f"({result.upload_kib * 6} KiB on the wire) read in {result.upload_s:.1f} s "
        f"({result.upload_status}); meanwhile {result.answered} requests on other connections "
        f"answered, {result.failed} failed, the slowest in {result.worst_s:.2f} s (target <= 2 s)"
    )
