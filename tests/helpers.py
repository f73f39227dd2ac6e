"""Shared test helpers: a PKI with every kind of client certificate, free ports, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from mutls import pki
from mutls.apps.facts import ConnectionFacts
from mutls.http import Headers, HTTPConnection, Request
from mutls.pki.certs import build_certificate
from mutls.server import RunningServer, ServerConfig
from mutls.tls.verify import verify_error_text

PASSWORD = "s3kr3t"
#: the article's three makecert commands, word for word (after the prefix `mutls makecert`).
ARTICLE_MAKECERT = tuple(
    shlex.split(line)
    for line in (
        '-r -n "CN=My Own Test CA" -sv root.key root.cer',
        "-iv root.key -ic root.cer -eku -n CN=pollux -p12 pollux.p12 s3kr3t",
        "-iv root.key -ic root.cer -eku -n CN=poupou -p12 poupou.p12 s3kr3t",
    )
)
#: files made by Mono 6.8's makecert (a copy of shared/fixtures/mono; see its README).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mono"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def read_until_close(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it closed (``False``: the socket timed out)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return data, False
    return data, True


async def asgi_body(receive: Any) -> bytes:
    """The whole request body an ASGI app receives."""
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def asgi_answer(send: Any, body: bytes) -> None:
    """An ASGI app's 200 with ``body`` (and its length)."""
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_json(start_response: Any, value: object) -> list[bytes]:
    """A WSGI app's 200 with ``value`` as JSON."""
    body = json.dumps(value).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def run_mutls(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
    umask: int = -1,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mutls ARGS`` and capture its output (stdin closed unless ``input``).

    ``umask`` is set in the child only (-1: inherit), as the umask is the whole process's.
    """
    return subprocess.run(
        [sys.executable, "-m", "mutls", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        umask=umask,
    )


@dataclass
class PKIFiles:
    """Files of a test PKI: one CA, a server, and a client certificate for every verdict.

    Every identity ``X`` is written as ``X.pem`` (certificate + chain), ``X.key`` and
    ``X.p12`` (password :data:`PASSWORD`) under ``directory``.
    """

    directory: Path
    ca: pki.CertificateAuthority
    other_ca: pki.CertificateAuthority
    intermediate: pki.CertificateAuthority
    identities: dict[str, pki.Identity]
    crl_path: Path

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    def p12(self, name: str) -> Path:
        return self.directory / f"{name}.p12"

    @property
    def ca_cert(self) -> Path:
        return self.directory / "root.pem"

    @property
    def other_ca_cert(self) -> Path:
        return self.directory / "other-root.pem"


X509_V_ERR_CERT_NOT_YET_VALID = 9

#: client certificates and the OpenSSL reason each must be reported with (None = valid).
CLIENT_CASES: dict[str, str | None] = {
    "poupou": None,
    "via-intermediate": None,
    "expired": "certificate has expired",
    # OpenSSL 3.0 says "certificate is not yet valid"; newer ones add "or the system clock...".
    "not-yet-valid": verify_error_text(X509_V_ERR_CERT_NOT_YET_VALID),
    "untrusted": "unable to get local issuer certificate",
    "self-signed": "self-signed certificate",
    "server-only": "unsuitable certificate purpose",
    "revoked": "certificate revoked",
    "disallowed": "certificate is in the Disallowed store",
}


def make_test_pki(directory: Path, key: pki.KeySpec | None = None) -> PKIFiles:
    """Build the PKI of :class:`PKIFiles` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = pki.CertificateAuthority.create("CN=My Own Test CA", key=key)
    other = pki.CertificateAuthority.create("CN=Untrusted Test CA", key=key)
    inter = ca.issue_intermediate("CN=My Intermediate CA", key=key)
    now = dt.datetime.now(dt.UTC)
    ids: dict[str, pki.Identity] = {
        "server": ca.issue_server("localhost", "127.0.0.1", "::1", key=key),
        "poupou": ca.issue_client("CN=poupou", email="poupou@example.org", key=key),
        "via-intermediate": inter.issue_client("CN=castor", key=key),
        "expired": ca.issue_client(
            "CN=expired",
            key=key,
            not_before=now - dt.timedelta(days=400),
            not_after=now - dt.timedelta(days=1),
        ),
        "not-yet-valid": ca.issue_client(
            "CN=future",
            key=key,
            not_before=now + dt.timedelta(days=10),
            not_after=now + dt.timedelta(days=400),
        ),
        "untrusted": other.issue_client("CN=mallory", key=key),
        "server-only": ca.issue("CN=serveronly", eku=(pki.SERVER_AUTH,), key=key),
        "revoked": ca.issue_client("CN=revoked", key=key),
        "disallowed": ca.issue_client("CN=banned", key=key),
    }
    self_key = pki.generate_private_key(key)
    self_cert = build_certificate(
        subject=x509.Name.from_rfc4514_string("CN=selfie"),
        public_key=self_key.public_key(),
        signing_key=self_key,
        eku=[pki.CLIENT_AUTH],
    )
    ids["self-signed"] = pki.Identity(self_cert, self_key)
    for name, identity in ids.items():
        identity.write_pem(directory / f"{name}.pem", directory / f"{name}.key", overwrite=True)
        identity.write_p12(directory / f"{name}.p12", PASSWORD, overwrite=True)
    pki.write_certificate(directory / "root.pem", ca.certificate, overwrite=True)
    pki.write_certificate(directory / "other-root.pem", other.certificate, overwrite=True)
    crl_path = directory / "root.crl.pem"
    pki.write_crl(crl_path, ca.crl([ids["revoked"].certificate]), overwrite=True)
    return PKIFiles(directory, ca, other, inter, ids, crl_path)


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Return once something accepts TCP connections on ``host:port`` (or raise after timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def mutls_process(args: list[str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``python -m mutls ARGS``; wait (bounded) for its "serving on" line (text or JSON);
    SIGTERM it."""
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "mutls", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while not re.search(rb'mutls: serving on|"message": "serving on', log.read_bytes()):
            if process.poll() is not None:
                raise AssertionError(f"server exited: {log.read_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {log.read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            stop_process(process)


def wait_for_text(path: Path, text: str, count: int = 1, timeout: float = 20) -> None:
    """Return once ``path`` holds ``text`` ``count`` times (a log line after a signal)."""
    deadline = time.monotonic() + timeout
    while path.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in {path} after {timeout} s: {path.read_text()}")
        time.sleep(0.05)


def curl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``curl -sS URL`` with ``args``, bounded."""
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", *args, url],
        capture_output=True,
        text=True,
        timeout=20,
    )


class ServerProcess:
    """A server process on a free 127.0.0.1 port, as a context manager (stopped on exit)."""

    def __init__(
        self,
        argv: list[str],
        port: int,
        cwd: str | os.PathLike[str],
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port
        self.args = argv
        self.cwd = cwd
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self.args,
            cwd=self.cwd,
            env={**os.environ, **self.env} if self.env else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@contextlib.contextmanager
def serving(server: Any) -> Iterator[Any]:
    """A ``socketserver`` server (``http.server``, ``wsgiref``) on a thread for the block;
    shut down, closed and joined (bounded) after it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a bounded wait, then SIGKILL."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class OpenSSLServer(ServerProcess):
    """``openssl s_server`` with ``args`` (``-Verify 1``, ``-tls1_3``, ``-WWW`` …).

    ``cwd`` is where ``-WWW`` finds its files. s_server serves one connection at a time.
    """

    def __init__(self, *args: str | os.PathLike[str], cwd: str | os.PathLike[str]) -> None:
        port = free_port()
        argv = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", *map(str, args)]
        super().__init__(argv, port, cwd)


class MutlsServer(ServerProcess):
    """``mutls xsp|serve ARGS --address 127.0.0.1 --port P`` (``args[0]`` is the command)."""

    def __init__(
        self,
        *args: str | os.PathLike[str],
        cwd: str | os.PathLike[str],
        env: dict[str, str] | None = None,
    ) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "mutls", *map(str, args)]
        super().__init__([*argv, "--address", "127.0.0.1", "--port", str(port)], port, cwd, env)


NGINX_PREAMBLE = """
daemon off;
master_process {master};
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    default_type text/plain;
    ssl_certificate {pki}/server.pem;
    ssl_certificate_key {pki}/server.key;
    ssl_client_certificate {pki}/root.pem;
{http}
}}
"""


@contextlib.contextmanager
def run_nginx(
    prefix: Path, pki_dir: Path, http: str, ports: Iterable[int], *, master: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """nginx in the foreground under ``prefix`` with ``http`` inside its ``http {}`` block.

    The block's TLS settings use the test PKI's ``server`` and ``root`` files. Waits until every
    port in ``ports`` listens (failing the test with nginx's error output if it does not),
    yields the process and stops nginx on exit. Skips the test when this nginx has no SSL
    module. ``master`` runs a master process (and its worker), which SIGHUP makes re-read the
    configuration: nginx 1.22 alone (``master_process off``) loses its TLS listeners doing so.
    """
    version = subprocess.run(["nginx", "-V"], capture_output=True, text=True, timeout=10)
    if "--with-http_ssl_module" not in version.stderr:
        pytest.skip("this nginx has no ssl module")
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_PREAMBLE.format(
            prefix=prefix, pki=pki_dir, http=http, master="on" if master else "off"
        )
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for port in ports:
            try:
                wait_for_port(port)
            except TimeoutError:
                process.kill()
                _, err = process.communicate(timeout=10)
                pytest.fail(f"nginx did not start: {err.decode()}")
        yield process
    finally:
        stop_process(process)


class LazyServers:
    """In-process servers started on first use, one per key, all stopped by :meth:`close`.

    ``make(key)`` returns the :class:`mutls.server.ServerConfig` for that key; modules whose
    tests need a server per mode or policy share one server per key this way.
    """

    def __init__(self, make: Callable[[str], ServerConfig]) -> None:
        self._make = make
        self._running: dict[str, RunningServer] = {}

    def __call__(self, key: str) -> RunningServer:
        if key not in self._running:
            server = RunningServer(self._make(key))
            server.start(timeout=30)
            self._running[key] = server
        return self._running[key]

    def close(self) -> None:
        for server in self._running.values():
            server.stop(timeout=15)
        self._running.clear()


# -- apps driven without a socket ------------------------------------------------------------------


class FakeChannel:
    """Records what an app sends on its :class:`mutls.apps.base.ResponseChannel`."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.body = b""
        self.finished = False
        self.aborted = False
        self.disconnected = False

    async def start(self, status: int, headers: Headers) -> None:
        assert not self.status, "head sent twice"
        self.status, self.headers = status, headers

    async def send(self, data: bytes) -> None:
        assert self.status, "body before head"
        self.body += data

    async def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True

    async def wait_disconnected(self) -> None:
        await asyncio.sleep(3600)


def parse_request(raw: bytes) -> Request:
    """The one request in ``raw`` (a request head, as a client sends it)."""
    conn = HTTPConnection()
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, Request)
    return event


def run_app(app: Any, raw: bytes, facts: ConnectionFacts, body: bytes = b"") -> FakeChannel:
    """Start ``app``, let it answer the request ``raw`` (bounded: 10 s), stop it."""
    channel = FakeChannel()

    async def go() -> None:
        await app.startup()
        await app.handle(parse_request(raw), body, facts, channel)
        await app.shutdown()

    asyncio.run(asyncio.wait_for(go(), 10))
    return channel


def run_in_terminal(
    args: Iterable[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str],
    wait_for: bytes,
    keys: bytes,
    timeout: float = 30,
) -> tuple[int, str]:
    """Run ``python -m mutls ARGS`` on a new pseudo-terminal, type ``keys`` once ``wait_for``
    has been printed, and return (exit status, everything it printed).

    The terminal is the child's controlling one, so ``getpass`` reads it as a person's.
    """
    import pty
    import select

    argv = [sys.executable, "-m", "mutls", *map(str, args)]
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child only execs
        try:
            os.chdir(cwd)
            os.execv(argv[0], argv)  # noqa: S606 - argv is ours, no shell
        finally:
            os._exit(127)
    out = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not typed and wait_for in out:
                os.write(fd, keys)
                typed = True
        else:
            os.kill(pid, 9)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert typed, f"never saw {wait_for!r}: {out!r}"
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")
