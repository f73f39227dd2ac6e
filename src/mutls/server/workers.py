"""``--workers N``: a supervisor that binds once, builds the TLS context once, and forks.

Workers inherit the listening sockets (so a dead worker's pending connections stay queued for
the others) and the built TLS context (so the session-ticket keys are the same in every worker
and a ticket issued by one resumes on another that can judge it). SIGHUP re-reads the trust in
the supervisor as in every worker, so a worker started after a crash judges by the current one.
The supervisor restarts a worker that dies, and on SIGTERM/SIGINT passes the signal on and
waits for the workers to drain. With ``--metrics-address`` it serves ``/metrics`` itself: every
worker is forked by :func:`mutls.server.metrics.fork_worker` (a row of counters of its own) and
reported to :func:`mutls.server.metrics.worker_exited` once reaped (its counts stay summed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from types import FrameType

from mutls.errors import MutlsError
from mutls.server import metrics
from mutls.server.config import ServerConfig
from mutls.server.log import log
from mutls.server.server import (
    Server,
    announce,
    bind_sockets,
    new_event_loop,
    reload_trust,
    remove_pidfile,
    startup_warnings,
    write_pidfile,
)

#: a worker that dies sooner than this after its start counts as a crash at startup.
QUICK_DEATH_S = 2.0
MAX_QUICK_DEATHS = 5


def run_workers(config: ServerConfig) -> int:
    """Serve with ``config.workers`` processes until SIGTERM/SIGINT; the exit code."""
    if not hasattr(os, "fork"):
        raise MutlsError("--workers needs fork(), which this system does not have")
    tls_context = config.tls_context()
    warnings = startup_warnings(config, tls_context)
    app = config.load_app()  # imported once: an import error stops us before any fork
    sockets = bind_sockets(config)
    metrics.start(config, tls_context, workers=config.workers)  # before any fork
    announce(config, sockets, warnings)
    write_pidfile(config)
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def on_hangup(signum: int, _frame: FrameType | None) -> None:
        # The supervisor re-reads too: a worker it starts later (after a crash) must judge by
        # the trust in force now, not the one of the start.
        reload_trust(config, tls_context)
        for pid in list(workers):  # each worker re-reads the trust itself
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    def spawn() -> None:
        pid = metrics.fork_worker()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                # SIGHUP's default would kill a worker not yet serving; its loop takes it over.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                loop = new_event_loop()
                server = Server(config, sockets)

                async def main() -> None:
                    server.install_signal_handlers()
                    await server.prepare(out=None, tls_context=tls_context, app=app)
                    await server.wait_stopped()
                    await server.shutdown()

                loop.run_until_complete(main())
                code = 0
            except BaseException:
                log.exception("worker %d failed", os.getpid())
            finally:
                os._exit(code)
        workers[pid] = time.monotonic()

    workers: dict[int, float] = {}
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, on_hangup)
    quick_deaths = 0
    try:
        for _ in range(config.workers):
            spawn()
        while workers:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            started = workers.pop(pid, None)
            metrics.worker_exited(pid)  # its counts stay counted; its slot is free
            if started is None or stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d exited (%d): starting another", pid, code)
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < QUICK_DEATH_S else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                on_signal(signal.SIGTERM, None)
                raise MutlsError("workers keep dying at start: see the log above")
            spawn()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in sockets:
            sock.close()
        metrics.stop()
        remove_pidfile(config)
    log.info("stopped")
    return 0
