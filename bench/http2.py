"""The HTTP/2 row: h2load (Debian's nghttp2-client) against each server that speaks HTTP/2,
several streams in flight per connection, the server's CPU per request read from /proc.

h2load cannot send a client certificate, so here every server *asks* for one (the TLS
CertificateRequest and its handling are paid) and the client sends none: mutls with
``--client-cert optional`` (strict), hypercorn with ``--verify-mode CERT_OPTIONAL``; granian has
no optional mode, so it asks for nothing (said in the report). The rest is the HTTP/1.1 rows':
one worker pinned to the server core, h2load on the other, interleaved rounds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from load import LOAD_CORE, BenchError
from peers import Peer, running, server_command
from pki import BenchPKI
from procstat import tree_cpu_seconds

#: the HTTP/2 servers of the row (by peer name, as in peers.PEERS).
H2_PEERS = ("hypercorn", "granian", "mutls strict")
#: h2load's load: connections, and streams in flight on each.
CONNECTIONS = 4
STREAMS = 16
NOTES = {
    "granian": "asks for no client certificate (it has no optional mode)",
    "hypercorn": "--verify-mode CERT_OPTIONAL, keep_alive_max_requests raised",
    "mutls strict": "--client-cert optional --verify strict",
}


@dataclass(frozen=True)
class H2Measurement:
    """One h2load run against one server."""

    requests: int
    succeeded: int
    status_2xx: int
    seconds: float
    server_cpu_seconds: float
    protocol: str

    @property
    def rate(self) -> float:
        """2xx answers per second."""
        return self.status_2xx / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """The server tree's CPU per 2xx answer, in microseconds."""
        return self.server_cpu_seconds * 1e6 / self.status_2xx if self.status_2xx else float("nan")


def h2_command(peer: Peer, files: BenchPKI, port: int, workdir: Path) -> list[str]:
    """The peer's HTTP/1.1-row command, with the client certificate asked for, not required."""
    command = server_command(peer, files, port, workdir)
    if peer.kind == "mutls":
        at = command.index("--client-cert")
        command[at + 1] = "optional"
    elif peer.kind == "hypercorn":
        command[command.index("CERT_REQUIRED")] = "CERT_OPTIONAL"
        # Its default closes an HTTP/2 connection after 1,000 requests (GOAWAY), and h2load
        # does not reconnect: the setting is a config file's only.
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "hypercorn.toml"
        config.write_text("keep_alive_max_requests = 1000000000\n")
        command += ["--config", str(config)]
    elif peer.kind == "granian":
        command.remove("--ssl-client-verify")
    return command


def measure_h2(port: int, pid: int, requests: int) -> H2Measurement:
    """``requests`` requests by h2load over CONNECTIONS connections of STREAMS streams each."""
    if shutil.which("h2load") is None:
        raise BenchError("h2load is needed: apt-get install -y nghttp2-client")
    command = [
        "taskset", "-c", str(LOAD_CORE), "h2load", "-n", str(requests), "-c", str(CONNECTIONS),
        "-m", str(STREAMS), f"https://127.0.0.1:{port}/",
    ]  # fmt: skip
    cpu_before = tree_cpu_seconds(pid)
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    seconds = time.monotonic() - started
    cpu = tree_cpu_seconds(pid) - cpu_before
    out = result.stdout
    done = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    took = re.search(r"finished in ([\d.]+)(ms|s)", out)
    protocol = re.search(r"Application protocol: (\S+)", out)
    if result.returncode != 0 or done is None or codes is None:
        raise BenchError(f"h2load failed: {(result.stderr or out).strip()[-300:]}")
    if took is not None:  # h2load's own clock, without its start and the process's
        seconds = float(took[1]) / (1000 if took[2] == "ms" else 1)
    return H2Measurement(
        requests=int(done[1]),
        succeeded=int(done[2]),
        status_2xx=int(codes[1]),
        seconds=seconds,
        server_cpu_seconds=cpu,
        protocol=protocol[1] if protocol else "?",
    )


def run_http2(
    peers: list[Peer],
    files: BenchPKI,
    work: Path,
    *,
    rounds: int,
    requests: int,
    log: Any,
    failures: dict[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """peer name -> one sample per round, peers interleaved."""
    chosen = [p for p in peers if p.name in H2_PEERS]
    samples: dict[str, list[dict[str, Any]]] = {}
    for round_no in range(rounds):
        order = chosen[round_no % len(chosen) :] + chosen[: round_no % len(chosen)]
        for peer in order:
            log(f"HTTP/2 round {round_no + 1}/{rounds} {peer.name}")
            workdir = work / f"h2-{peer.name.replace(' ', '-')}"
            try:
                with running(peer, files, workdir, command=h2_command) as (pid, port):
                    m = measure_h2(port, pid, requests)
            except BenchError as error:
                failures[f"{peer.name} HTTP/2 round {round_no + 1}"] = str(error)
                log(f"  FAILED: {error}")
                continue
            if m.protocol != "h2":
                failures[f"{peer.name} HTTP/2"] = f"negotiated {m.protocol}, not h2"
            samples.setdefault(peer.name, []).append(
                {**m.__dict__, "rate": m.rate, "cpu_us": m.cpu_us}
            )
    return samples


def http2_table(samples: dict[str, list[dict[str, Any]]]) -> str:
    """Median (min–max) of 2xx/s and CPU µs per request, with the 2xx count of every run."""

    def cell(values: list[float], fmt: str) -> str:
        ordered = sorted(values)
        median = ordered[len(ordered) // 2]
        return f"{median:{fmt}} ({ordered[0]:{fmt}}–{ordered[-1]:{fmt}})"

    lines = [
        "| server | requests/s | server CPU µs/request | 2xx / requests, every run "
        "| client certificate |",
        "|---|---|---|---|---|",
    ]
    for name, runs in samples.items():
        counts = ", ".join(f"{r['status_2xx']}/{r['requests']}" for r in runs)
        lines.append(
            f"| {name} | {cell([r['rate'] for r in runs], ',.0f')} | "
            f"{cell([r['cpu_us'] for r in runs], '.0f')} | {counts} | {NOTES.get(name, '')} |"
        )
    return "\n".join(lines)
