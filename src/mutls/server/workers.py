"""``--workers N``: a supervisor that binds once, builds each generation once, and forks.

Workers inherit the listening sockets (a connection waiting in the kernel's queue is taken by
whichever worker accepts next, so no worker's exit loses one) and their generation's TLS
context, built in the supervisor with ticket keys made once (or read from
``--ticket-key-file``): a ticket resumes on every worker of every generation that can judge it.

Reload (SIGHUP, or ``--reload-on-change``): the supervisor builds the next generation whole
(:meth:`mutls.server.reload.Reloader.reload`); if anything in it is broken, the running one
stays. Otherwise it forks N workers of the new generation on the same sockets, and once each
has said it serves (its pid on a pipe), sends the old ones SIGTERM: they stop accepting, close
idle kept-alive connections, finish the requests in flight (``--timeout-graceful-shutdown``)
and exit, at once when nothing is in flight. Until then the old generation serves on. A worker
of the current generation that dies is replaced by one of the current generation (never of an
older one: it judges by the trust in force); old workers exiting are not crashes.
SIGTERM/SIGINT are passed on to every worker.
 With ``--metrics-address`` the supervisor serves ``/metrics`` itself: every
worker is forked by :func:`mutls.server.metrics.fork_worker` (a row of counters of its own) and
reported to :func:`mutls.server.metrics.worker_exited` once reaped (its counts stay summed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import struct
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from mutls.errors import MutlsError
from mutls.server import metrics, systemd
from mutls.server.config import ServerConfig
from mutls.server.log import log
from mutls.server.reload import Generation, Reloader
from mutls.server.server import (
    Server,
    announce,
    bind_sockets,
    new_event_loop,
    remove_pidfile,
    write_pidfile,
)
from mutls.server.watch import POLL_S, FileWatcher

if TYPE_CHECKING:
    import socket

    from mutls.apps.base import HTTPApp

#: a worker that dies sooner than this after its start counts as a crash at startup.
QUICK_DEATH_S = 2.0
MAX_QUICK_DEATHS = 5
_PID = struct.Struct("=i")


@dataclass
class Worker:
    """One worker process, of one generation."""

    generation: int
    started: float
    ready: bool = False


def run_workers(config: ServerConfig) -> int:
    """Serve with ``config.workers`` processes until SIGTERM/SIGINT; the exit code."""
    if not hasattr(os, "fork"):
        raise MutlsError("--workers needs fork(), which this system does not have")
    reloader = Reloader(config)
    app = config.load_app()  # imported once: an import error stops us before any fork
    sockets = bind_sockets(config)
    metrics.start(config, reloader.current.tls_context, workers=config.workers)  # before forks
    announce(config, sockets, list(reloader.current.warnings))
    write_pidfile(config)
    try:
        Supervisor(reloader, app, sockets).run()
    finally:
        for sock in sockets:
            sock.close()
        metrics.stop()
        remove_pidfile(config)
    log.info("stopped")
    return 0


class Supervisor:
    """Keeps N workers of the current generation running; see the module's docstring."""

    def __init__(self, reloader: Reloader, app: HTTPApp, sockets: list[socket.socket]) -> None:
        self.reloader = reloader
        self.pid = os.getpid()  # what a worker's orphan watch compares its parent with
        self.app = app
        self.sockets = sockets
        self.workers: dict[int, Worker] = {}
        #: the generation whose workers serve until the current one's are all ready.
        self.previous: Generation | None = None
        self.stopping = False
        self.hangup = False
        self.quick_deaths = 0
        #: workers already sent SIGTERM.
        self._told: set[int] = set()
        self._wake_r, self._wake_w = os.pipe()
        self._ready_r, self._ready_w = os.pipe()
        for fd in (self._wake_r, self._wake_w, self._ready_r):
            os.set_blocking(fd, False)

    @property
    def current(self) -> Generation:
        return self.reloader.current

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> None:
        config = self.current.config
        watcher = FileWatcher(config.watched_paths()) if config.reload_on_change else None
        handlers = {
            signal.SIGTERM: self._on_stop,
            signal.SIGINT: self._on_stop,
            signal.SIGHUP: self._on_hangup,
            signal.SIGCHLD: _wake_only,  # a Python handler, so the wake-up fd hears it
        }
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        next_poll = time.monotonic() + POLL_S
        self._fill()
        systemd.notify("READY=1")  # the sockets listen: connections queue for the workers
        try:
            while True:
                self._reap()
                if self.stopping:
                    if not self.workers:
                        break
                    # one forked as the signal came was not in the list yet
                    self._signal([p for p in self.workers if p not in self._told], signal.SIGTERM)
                    self._read_ready()  # unread, it would wake select at once: a busy loop
                else:
                    if self.hangup:
                        self.hangup = False
                        self._reload("SIGHUP")
                    if watcher is not None and time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + POLL_S
                        if watcher.poll():
                            self._reload("file change")
                    self._fill()
                    self._read_ready()
                    self._retire_previous()
                with contextlib.suppress(InterruptedError):
                    select.select([self._wake_r, self._ready_r], [], [], POLL_S / 2)
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (self._wake_r, self._wake_w, self._ready_r, self._ready_w):
                os.close(fd)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            systemd.notify("STOPPING=1")
            self._signal(list(self.workers), signal.SIGTERM)

    def _on_hangup(self, signum: int, _frame: FrameType | None) -> None:
        self.hangup = True

    def _signal(self, pids: list[int], sig: int) -> None:
        if sig == signal.SIGTERM:
            self._told.update(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # -- generations -------------------------------------------------------------------------

    def _reload(self, why: str) -> None:
        serving = self.current
        if self.reloader.reload(why) is None:
            return
        if self.previous is None:
            self.previous = serving
        else:  # two reloads in a row: the one between never served alone; retire it now
            self._signal(self._pids_of(serving.number), signal.SIGTERM)
        self.quick_deaths = 0

    def _pids_of(self, number: int) -> list[int]:
        return [pid for pid, worker in self.workers.items() if worker.generation == number]

    def _retire_previous(self) -> None:
        """Once every worker of the current generation serves, the previous one stops."""
        if self.previous is None:
            return
        mine = [w for w in self.workers.values() if w.generation == self.current.number]
        if len(mine) < self.current.config.workers or not all(w.ready for w in mine):
            return
        old = [pid for pid, w in self.workers.items() if w.generation != self.current.number]
        self._signal(old, signal.SIGTERM)
        self.previous = None

    # -- workers -----------------------------------------------------------------------------

    def _fill(self) -> None:
        while len(self._pids_of(self.current.number)) < self.current.config.workers:
            self._spawn(self.current)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            metrics.worker_exited(pid)  # its counts stay counted; its slot is free
            self._told.discard(pid)
            if worker is None or self.stopping or worker.generation != self.current.number:
                continue  # a retired worker's exit is no crash
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d exited (%d): starting another", pid, code)
            quick = time.monotonic() - worker.started < QUICK_DEATH_S
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            if self.quick_deaths >= MAX_QUICK_DEATHS:
                self._on_stop(signal.SIGTERM, None)
                raise MutlsError("workers keep dying at start: see the log above")

    def _read_ready(self) -> None:
        try:
            data = os.read(self._ready_r, 4096)
        except BlockingIOError:
            return
        for (pid,) in _PID.iter_unpack(data[: len(data) - len(data) % _PID.size]):
            if pid in self.workers:
                self.workers[pid].ready = True

    def _spawn(self, generation: Generation) -> None:
        # Signals wait until the child has its own dispositions: a SIGTERM sent to it as it
        # starts (a stop right after a reload) must end it, not run the supervisor's handler
        # in the child, which would then serve, told to stop but deaf to it.
        signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
        try:
            pid = metrics.fork_worker()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISOR_SIGNALS)
            raise
        if pid == 0:  # the worker
            code = 1
            try:
                self._become_worker(generation)
                code = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                os._exit(code)
        self.workers[pid] = Worker(generation.number, time.monotonic())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISOR_SIGNALS)

    def _become_worker(self, generation: Generation) -> None:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        # SIGHUP's default would kill a worker; the supervisor reloads, workers ignore it.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SUPERVISOR_SIGNALS)  # see _spawn
        for fd in (self._wake_r, self._wake_w, self._ready_r):
            os.close(fd)
        loop = new_event_loop()
        server = Server(generation.config, self.sockets)
        ready_fd = self._ready_w

        supervisor = self.pid  # not getppid() here: the supervisor may be gone already

        async def orphaned() -> None:
            """A supervisor killed outright (SIGKILL, the OOM killer) tells nobody: a worker
            that finds itself adopted stops as on SIGTERM, rather than serve on unsupervised,
            holding the port, with the trust of a generation nobody can reload."""
            while os.getppid() == supervisor:
                await asyncio.sleep(ORPHAN_CHECK_S)
            log.warning("worker %d: the supervisor %d is gone: stopping", os.getpid(), supervisor)
            server.request_stop()

        async def main() -> None:
            server.install_signal_handlers(reload=False)
            watch = asyncio.get_running_loop().create_task(orphaned())
            await server.prepare(out=None, generation=generation, app=self.app)
            with contextlib.suppress(BrokenPipeError):  # a supervisor gone: see orphaned()
                os.write(ready_fd, _PID.pack(os.getpid()))
            await server.wait_stopped()
            watch.cancel()
            await server.shutdown()

        loop.run_until_complete(main())


#: seconds between a worker's looks at whether its supervisor still runs.
ORPHAN_CHECK_S = 1.0
#: what the supervisor handles; blocked while it forks (see Supervisor._spawn).
_SUPERVISOR_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}


def _wake_only(signum: int, _frame: FrameType | None) -> None:
    """SIGCHLD: nothing to do here; the loop reaps (the wake-up fd woke it)."""
