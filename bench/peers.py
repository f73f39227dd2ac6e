"""The servers under test: how to install, start (mTLS required), probe and stop each one.

Python peers live in their own venv (``bench/.venv``) so the project's venv stays as it is;
nginx comes from Debian; mutls runs from the project's venv, the one running this harness.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from load import SERVER_CORE, BenchError
from pki import BenchPKI

BENCH_DIR = Path(__file__).resolve().parent
PEERS_VENV = BENCH_DIR / ".venv"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
PEER_REQUIREMENTS = ("uvicorn[standard]", "hypercorn", "granian")
APP = "asgi_app:app"
#: idle connections must outlive the measurement of their memory.
KEEP_ALIVE_S = 600
#: one request per connection (the probe's, the soak's valid clients', the flood's).
REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class ServerStartError(BenchError):
    """A server did not start or never answered: it is skipped for the rest of the run."""


@dataclass(frozen=True)
class Peer:
    """One server configuration in the table."""

    name: str
    kind: str  # nginx | uvicorn | hypercorn | granian | mutls
    workers: int = 1
    verify: str = "strict"  # mutls only: strict | report


PEERS = (
    Peer("nginx", "nginx"),
    Peer("uvicorn", "uvicorn"),
    Peer("hypercorn", "hypercorn"),
    Peer("granian", "granian"),
    Peer("mutls strict", "mutls"),
    Peer("mutls report", "mutls", verify="report"),
    Peer("mutls strict x2", "mutls", workers=2),
)


def _run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


# -- installing ------------------------------------------------------------------------------


def nginx_binary() -> str | None:
    """nginx's path when it is installed with its SSL module, else None."""
    path = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if path is None:
        return None
    return path if "http_ssl_module" in _run([path, "-V"]).stderr else None


def ensure_debian_packages(log: object = print) -> None:
    """nginx (with SSL), gcc and libssl-dev from Debian, installed when absent and we are root."""
    missing = []
    if nginx_binary() is None:
        missing.append("nginx-light")
    if shutil.which("gcc") is None:
        missing.append("gcc")
    if not Path("/usr/include/openssl/ssl.h").exists():
        missing.append("libssl-dev")
    if shutil.which("taskset") is None:
        missing.append("util-linux")
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"missing Debian packages: apt-get install -y {' '.join(missing)}")
    log(f"installing from Debian: {' '.join(missing)}")  # type: ignore[operator]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}")


def ensure_peers_venv(log: object = print) -> None:
    """Create ``bench/.venv`` with uvicorn[standard], hypercorn and granian from PyPI, once."""
    marker = PEERS_VENV / ".bench-peers"
    wanted = "\n".join(PEER_REQUIREMENTS)
    if marker.exists() and marker.read_text() == wanted and PEERS_PYTHON.exists():
        return
    log(f"installing the peers into {PEERS_VENV}: {', '.join(PEER_REQUIREMENTS)}")  # type: ignore[operator]
    steps = (
        [sys.executable, "-m", "venv", str(PEERS_VENV)],
        [str(PEERS_PYTHON), "-m", "pip", "install", "-q", *PEER_REQUIREMENTS],
    )
    for command in steps:
        result = _run(command, timeout=900)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(command)} failed: {result.stderr.strip()[-300:]}")
    marker.write_text(wanted)


def peers_venv_ready() -> bool:
    """Whether ``bench/.venv`` holds the peers (tests use this to skip, never to install)."""
    return (PEERS_VENV / ".bench-peers").exists() and PEERS_PYTHON.exists()


@functools.cache
def mutls_serve_help() -> tuple[str | None, str]:
    """(the help text of ``mutls serve``, or None and why it is not usable yet)."""
    try:
        result = _run([sys.executable, "-m", "mutls", "serve", "--help"], timeout=30)
    except subprocess.TimeoutExpired:
        return None, "`python -m mutls serve --help` timed out"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"`python -m mutls serve --help` fails ({last[:120]})"
    return result.stdout, ""


def mutls_serve_status() -> tuple[bool, bool, str]:
    """(``mutls serve`` works, has ``--workers``, why not), from ``mutls serve --help``."""
    text, why = mutls_serve_help()
    return text is not None, text is not None and has_flag(text, "--workers"), why


# -- what each one runs on -------------------------------------------------------------------


def software_versions() -> dict[str, str]:
    """Each server's version and the TLS library it runs on, for the results."""
    versions: dict[str, str] = {}
    nginx = nginx_binary()
    if nginx:
        text = _run([nginx, "-V"]).stderr
        built = re.search(r"built with (OpenSSL [^ ]+)", text)
        running = re.search(r"running with (OpenSSL [^ ]+)", text)
        version = re.search(r"nginx/([^ \n]+)", text)
        tls = (running or built).group(1) if (running or built) else "?"  # type: ignore[union-attr]
        versions["nginx"] = f"nginx {version.group(1) if version else '?'}, {tls}"
    if PEERS_PYTHON.exists():
        probe = (
            "import importlib.metadata as m, json, ssl\n"
            "v = lambda n: m.version(n)\n"
            "print(json.dumps({'ssl': ssl.OPENSSL_VERSION, 'uvicorn': v('uvicorn'),"
            " 'uvloop': v('uvloop'), 'httptools': v('httptools'), 'hypercorn': v('hypercorn'),"
            " 'granian': v('granian')}))"
        )
        result = _run([str(PEERS_PYTHON), "-c", probe])
        if result.returncode == 0:
            p = json.loads(result.stdout)
            versions["uvicorn"] = (
                f"uvicorn {p['uvicorn']} + uvloop {p['uvloop']} + httptools {p['httptools']}, "
                f"{p['ssl']} (stdlib ssl)"
            )
            versions["hypercorn"] = f"hypercorn {p['hypercorn']} (asyncio), {p['ssl']} (stdlib ssl)"
            versions["granian"] = f"granian {p['granian']}, rustls (built into granian)"
    from mutls.tls import OPENSSL_VERSION

    versions["mutls"] = f"mutls (cffi ABI), {OPENSSL_VERSION} (the stdlib ssl's library)"
    versions["loadgen"] = f"bench/loadgen.c, {_run(['openssl', 'version']).stdout.strip()}"
    return versions


# -- running ---------------------------------------------------------------------------------


def _nginx_config(files: BenchPKI, port: int, workdir: Path) -> Path:
    config = workdir / "nginx.conf"
    temp = workdir / "nginx-temp"
    temp.mkdir(exist_ok=True)
    config.write_text(
        f"""daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 30000;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 25000; }}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_timeout {KEEP_ALIVE_S}s;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {files.server_cert};
        ssl_certificate_key {files.server_key};
        ssl_client_certificate {files.ca};
        ssl_verify_client on;
        # nginx before 1.23.4 leaves TLS 1.3 out of its default protocols: without this line
        # it spoke TLS 1.2 here, and resumed without any key exchange (no forward secrecy)
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {{ return 200 "ok"; }}
    }}
}}
"""
    )
    return config


def has_flag(help_text: str, flag: str) -> bool:
    """Whether ``flag`` itself (not a longer flag that starts with it) is in ``help_text``."""
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text) is not None


def server_command(peer: Peer, files: BenchPKI, port: int, workdir: Path) -> list[str]:
    """The command line that serves the bench app on 127.0.0.1:``port`` requiring a client cert."""
    py = str(PEERS_PYTHON)
    if peer.kind == "nginx":
        nginx = nginx_binary() or "nginx"
        return [nginx, "-p", str(workdir), "-c", str(_nginx_config(files, port, workdir))]
    if peer.kind == "uvicorn":
        return [
            py, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(peer.workers), "--loop", "uvloop", "--http", "httptools",
            "--ssl-certfile", str(files.server_cert), "--ssl-keyfile", str(files.server_key),
            "--ssl-ca-certs", str(files.ca), "--ssl-cert-reqs", "2",
            "--timeout-keep-alive", str(KEEP_ALIVE_S), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if peer.kind == "hypercorn":
        return [
            py, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}",
            "--workers", str(peer.workers), "--certfile", str(files.server_cert),
            "--keyfile", str(files.server_key), "--ca-certs", str(files.ca),
            "--verify-mode", "CERT_REQUIRED", "--keep-alive", str(KEEP_ALIVE_S),
            "--backlog", "4096",
        ]  # fmt: skip
    if peer.kind == "granian":
        return [
            py, "-m", "granian", APP, "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(peer.workers),
            "--ssl-certificate", str(files.server_cert), "--ssl-keyfile", str(files.server_key),
            "--ssl-ca", str(files.ca), "--ssl-client-verify", "--backlog", "4096",
            "--backpressure", "30000", "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if peer.kind == "mutls":
        command = [
            sys.executable, "-m", "mutls", "serve", APP, "--app-dir", str(BENCH_DIR),
            "--address", "127.0.0.1", "--port", str(port),
            "--cert", str(files.server_cert), "--key", str(files.server_key),
            "--client-cert", "require", "--verify", peer.verify, "--client-ca", str(files.ca),
        ]  # fmt: skip
        text = mutls_serve_help()[0] or ""
        if has_flag(text, "--no-access-log"):  # the peers run without theirs too
            command.append("--no-access-log")
        if has_flag(text, "--nonstop"):  # XSP's habit: without it, end of stdin stops the server
            command.append("--nonstop")
        if has_flag(text, "--max-connections"):  # the idle test holds 10,000
            command += ["--max-connections", "30000"]
        for flag in ("--timeout-keep-alive", "--keep-alive-timeout", "--keep-alive"):
            if has_flag(text, flag):  # idle connections must outlive the opening of 10,000
                command += [flag, str(KEEP_ALIVE_S)]
                break
        return command + (["--workers", str(peer.workers)] if peer.workers != 1 else [])
    raise BenchError(f"unknown peer kind {peer.kind!r}")


def _raise_nofile() -> None:
    """Run in the child: every server may hold 10,000 connections."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe(files: BenchPKI, port: int, timeout: float = 2.0) -> str:
    """One mTLS ``GET /``; returns the status line (raises OSError or ssl.SSLError)."""
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.client_cert), str(files.client_key))
    context.minimum_version = ssl.TLSVersion.TLSv1_3  # as the load generator: 1.3 only
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(REQUEST)
            data = b""
            while b"\r\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


@contextlib.contextmanager
def running(
    peer: Peer,
    files: BenchPKI,
    workdir: Path,
    *,
    ready_timeout: float = 30.0,
    command: Callable[[Peer, BenchPKI, int, Path], list[str]] | None = None,
) -> Iterator[tuple[int, int]]:
    """Start ``peer`` pinned to the server core; yield (pid, port) once it answers 200; stop it.
    ``command`` makes its command line (default :func:`server_command`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = (command or server_command)(peer, files, port, workdir)
    command_line = ["taskset", "-c", str(SERVER_CORE), *argv]
    env = {**os.environ, "PYTHONPATH": str(BENCH_DIR), "PYTHONDONTWRITEBYTECODE": "1"}
    log_path = workdir / f"{peer.kind}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            command_line,
            cwd=BENCH_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_raise_nofile,  # no threads run here yet
        )
    try:
        _wait_ready(proc, files, port, ready_timeout, log_path)
        yield proc.pid, port
    finally:
        stop(proc)


def _wait_ready(
    proc: subprocess.Popen[bytes], files: BenchPKI, port: int, timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-2:])
            raise ServerStartError(f"server exited with {proc.returncode}: {tail[:300]}")
        try:
            status = probe(files, port)
            if " 200 " in status + " ":
                return
            last = status or "empty answer"
        except (OSError, ssl.SSLError) as error:
            last = str(error)
        time.sleep(0.1)
    raise ServerStartError(f"server not ready within {timeout:.0f} s: {last[:200]} (log: {log})")


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after 10 s; always reaps.

    The group is signalled only while a member is alive: a live group keeps its id from being
    reused, so no other process is ever hit.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(proc.pid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 10
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
