"""``Server``: the lifecycle of one serving process: start, listen, stop gracefully.

Everything that can fail (the TLS context, the app import, the ports) fails before the first
connection is accepted, with one readable line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from mutls.errors import MutlsError
from mutls.server import metrics, systemd
from mutls.server.config import ServerConfig
from mutls.server.log import access_log_enabled, log, startup_log
from mutls.server.memory import MemoryTrimmer
from mutls.server.protocol import ConnectionProtocol, ServerState
from mutls.server.proxy_protocol import proxy_notes
from mutls.server.reload import Generation, Reloader
from mutls.server.watch import POLL_S, FileWatcher
from mutls.tls.options import ClientCertMode

if TYPE_CHECKING:
    from mutls.apps.base import HTTPApp
    from mutls.tls.context import ServerContext


class ServerStartError(MutlsError):
    """The server could not start (a port in use, an address that does not exist)."""


def bind_sockets(config: ServerConfig) -> list[socket.socket]:
    """Listening sockets for ``config.host`` and ``config.port`` (both families for ``None``),
    or the inherited ones (``--fd``, systemd's socket activation)."""
    try:
        inherited = systemd.inherited_sockets(config.fds)
    except systemd.InheritedSocketError as exc:
        raise ServerStartError(str(exc)) from None
    if inherited is not None:
        return inherited
    hosts: list[str | None]
    if config.host in (None, "", "*"):
        hosts = ["0.0.0.0", "::"] if socket.has_ipv6 else ["0.0.0.0"]
    else:
        hosts = [config.host]
    sockets: list[socket.socket] = []
    port = config.port
    try:
        for host in hosts:
            family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(1024)
            sock.setblocking(False)
            port = sock.getsockname()[1]  # port 0: every family gets the same free port
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ServerStartError(
            f"cannot listen on {config.host or '*'}:{config.port}: {exc.strerror} "
            "(change --address/--port)"
        ) from None
    return sockets


def urls(config: ServerConfig, sockets: list[socket.socket]) -> list[str]:
    """The URLs a client can use, one per listening socket."""
    scheme = "https" if config.tls else "http"
    found = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]
        shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1", "::1") else host
        if ":" in shown:
            shown = f"[{shown}]"
        found.append(f"{scheme}://{shown}:{port}/ (listening on {host})")
    return found


def describe_mode(config: ServerConfig) -> str:
    """The startup line that says what the server asks of clients."""
    if not config.tls and config.forwarded_cert_header:
        return (
            "mode: plain HTTP behind a TLS-terminating proxy, forwarded client certificate "
            f"{config.client_cert.value}, policy {config.verify.value}"
        )
    if not config.tls:
        return "mode: plain HTTP (no TLS)"
    if config.client_cert is ClientCertMode.NONE:
        return "mode: HTTPS, no client certificate asked for"
    return (
        f"mode: HTTPS, client certificate {config.client_cert.value}, "
        f"policy {config.verify.value}"
        + (
            ", refused in the handshake when missing"
            if config.tls_options.reject_at_handshake
            else ""
        )
    )


def startup_warnings(config: ServerConfig, tls_context: ServerContext | None) -> list[str]:
    """What the operator must read before trusting this server (from the TLS engine, which
    also refuses here a configuration that could never accept a client)."""
    if tls_context is None:
        return []
    return [*tls_context.warnings, *tls_context.validate(config.verify)]


def announce(config: ServerConfig, sockets: list[socket.socket], warnings: list[str]) -> None:
    """The startup lines, logged (``mutls: serving on https://...``): the URLs, the mode and
    policy, the app, the warnings."""
    for url in urls(config, sockets):
        startup_log.info("serving on %s", url)
    startup_log.info("%s", describe_mode(config))
    if config.tls:
        from mutls.tls import OPENSSL_VERSION

        startup_log.info("TLS by %s (the library of Python's ssl module)", OPENSSL_VERSION)
    what = _app_name(config.app) or "the test page at /cctest.aspx" + (
        f" and static files from {config.root}" if config.root else ""
    )
    startup_log.info("app: %s", what)
    if config.workers > 1:
        startup_log.info("%d worker processes", config.workers)
    for note in proxy_notes(config):
        startup_log.info("%s", note)
    for warning in warnings:
        startup_log.warning("%s", warning)


class Server:
    """Serves one :class:`ServerConfig` in the running event loop."""

    def __init__(self, config: ServerConfig, sockets: list[socket.socket] | None = None) -> None:
        self.config = config
        self.sockets = sockets
        self.state: ServerState | None = None
        self.started = asyncio.Event()
        self._stop = asyncio.Event()
        self._servers: list[asyncio.base_events.Server] = []
        self._chores: list[asyncio.Task[None]] = []
        #: this server's own generations (``None`` in a worker: its supervisor reloads).
        self.reloader: Reloader | None = None
        self._owns_metrics = False

    @property
    def ports(self) -> list[int]:
        """The ports listened on (useful with port 0)."""
        return [int(s.getsockname()[1]) for s in self.sockets or []]

    def request_stop(self) -> None:
        """Ask for a graceful stop (safe from a signal handler in the loop)."""
        self._stop.set()

    async def prepare(
        self,
        out: TextIO | None = sys.stderr,
        generation: Generation | None = None,
        app: HTTPApp | None = None,
    ) -> None:
        """Build the TLS context and the app (unless given: a worker gets its generation's),
        bind, start the app, and print the startup lines to ``out``.

        Without a ``generation`` this server reloads itself (SIGHUP, ``--reload-on-change``).
        """
        config = self.config
        if generation is None:
            self.reloader = Reloader(config)
            generation = self.reloader.current
        if app is None:
            app = config.load_app()
        # /metrics listens before the server's port does: whoever waits for that port finds
        # /health answering (503 until ready)
        row, self._owns_metrics = metrics.row_for_server(config, generation.tls_context)
        if self.sockets is None:
            try:
                self.sockets = bind_sockets(config)
            except ServerStartError:
                self.close_metrics()
                raise
        self.state = ServerState(config, app, generation.tls_context, generation.forwarding)
        self.state.access_log = access_log_enabled()  # once, not per request
        self.state.metrics = row
        await app.startup()
        loop = asyncio.get_running_loop()
        state = self.state
        for sock in self.sockets:
            self._servers.append(
                await loop.create_server(lambda: ConnectionProtocol(state), sock=sock, backlog=1024)
            )
        self._chores = [
            loop.create_task(state.watchdog.run()),  # --app-timeout
            # after a burst of connections (an attack, a peak), give the freed memory back
            loop.create_task(MemoryTrimmer(lambda: len(state.connections)).run()),
        ]
        if self.reloader is not None and config.reload_on_change:
            self._chores.append(loop.create_task(self._watch(config.watched_paths())))
        if out is not None:
            announce(config, self.sockets, list(generation.warnings))
        if row is not None:
            row.set_ready(True)
        self.started.set()

    def close_metrics(self) -> None:
        """Close the ``--metrics-address`` listener this server opened (its shutdown does;
        this is for a server whose start failed)."""
        if self._owns_metrics:
            self._owns_metrics = False
            metrics.stop()

    async def _watch(self, paths: tuple[str, ...]) -> None:
        """--reload-on-change: poll the files, reload when they changed and settled."""
        watcher = FileWatcher(paths)
        while True:
            await asyncio.sleep(POLL_S)
            if watcher.poll():
                self.reload("file change")

    async def wait_stopped(self) -> None:
        """Return once a stop was requested."""
        await self._stop.wait()

    async def serve(self, out: TextIO | None = sys.stderr) -> None:
        """Run until :meth:`request_stop` (or SIGTERM/SIGINT when installed), then drain."""
        await self.prepare(out)
        await self._stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop accepting, finish requests in flight (bounded), close, run app shutdown."""
        state = self.state
        if state is None:
            return
        state.stopping = True
        if state.metrics is not None:
            state.metrics.set_ready(False)  # /health: a load balancer stops sending here
        for server in self._servers:
            server.close()
        if state.sources is not None:
            state.sources.close()  # the connections held unread
        for conn in list(state.connections):
            conn.close_when_idle()
        deadline = asyncio.get_running_loop().time() + self.config.timeouts.graceful
        while state.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(state.connections):
            conn.abort()
        for chore in self._chores:  # the --app-timeout sweep served the drain too
            chore.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1)
        await state.app.shutdown()
        self.close_metrics()

    def install_signal_handlers(self, *, reload: bool = True) -> None:
        """SIGTERM and SIGINT stop gracefully; SIGHUP (unless ``reload`` is off: a worker's
        supervisor reloads) re-reads everything the server was started from."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        if reload:
            with contextlib.suppress(NotImplementedError, RuntimeError, AttributeError):
                loop.add_signal_handler(signal.SIGHUP, self.reload)

    def reload(self, why: str = "SIGHUP") -> bool:
        """Read everything again (identity, trust, CRLs, ticket-key files, rules) and, when
        all of it is good, swap it in for the next connections; those open keep theirs.
        A broken file keeps the running configuration (one line in the log)."""
        state = self.state
        if state is None or self.reloader is None:
            return False
        generation = self.reloader.reload(why)
        if generation is None:
            return False
        if generation.tls_context is not None and state.tls_context is not None:
            # hints are the lists clients sent: safe to carry, they are judged anew each time
            generation.tls_context.chain_hints = state.tls_context.chain_hints
        state.tls_context = generation.tls_context
        state.forwarding = generation.forwarding
        state.config = generation.config
        return True


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed, else asyncio's."""
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    return loop


def run(config: ServerConfig, *, on_ready: Callable[[Server], None] | None = None) -> int:
    """Serve ``config`` in this process until SIGTERM/SIGINT; the exit code."""
    loop = new_event_loop()
    server = Server(config)

    async def main() -> None:
        server.install_signal_handlers()
        await server.prepare()
        if on_ready is not None:
            on_ready(server)
        write_pidfile(config)
        systemd.notify("READY=1")
        try:
            await server.wait_stopped()
        finally:
            systemd.notify("STOPPING=1")
            await server.shutdown()

    try:
        loop.run_until_complete(main())
    finally:
        server.close_metrics()  # when the start failed (else the shutdown closed it)
        remove_pidfile(config)
        loop.close()
    log.info("stopped")
    return 0


def write_pidfile(config: ServerConfig) -> None:
    """Write this process's id to ``--pidfile``."""
    if config.pidfile is not None:
        try:
            with open(config.pidfile, "w", encoding="ascii") as handle:
                handle.write(f"{os.getpid()}\n")
        except OSError as exc:
            raise MutlsError(f"--pidfile {config.pidfile}: {exc.strerror}") from None


def remove_pidfile(config: ServerConfig) -> None:
    """Remove ``--pidfile`` (at exit)."""
    if config.pidfile is not None:
        with contextlib.suppress(OSError):
            os.remove(config.pidfile)


def _app_name(app: object) -> str | None:
    if app is None or isinstance(app, str):
        return app
    return f"{getattr(app, '__module__', '?')}:{getattr(app, '__qualname__', type(app).__name__)}"
