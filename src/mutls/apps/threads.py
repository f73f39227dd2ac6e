"""``AppThreads``: the bounded thread pool WSGI apps run in, which can give up on a thread.

``concurrent.futures.ThreadPoolExecutor`` fits neither fault the server must survive: its queue
is unbounded (an overloaded server would queue requests until clients give up, instead of
answering 503 at once), and a thread stuck in an app keeps its place for ever (a few hung
requests would stop every WSGI request), while its non-daemon threads keep the process from
exiting. Here the queue is bounded (:meth:`submit` says no), and a thread running past the app
timeout is *abandoned*: Python cannot stop a thread, so it runs on, uncounted in the pool,
which starts another in its place. Abandoned threads are counted; at most ``threads`` of them
are replaced at once, so a hung app costs at most twice the threads, never an unbounded number.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class _Job:
    """One call waiting for, or running in, a thread."""

    __slots__ = ("abandoned", "done", "fn", "future", "replaced", "thread")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()
        self.thread: threading.Thread | None = None
        self.done = False
        self.abandoned = False
        self.replaced = False


class AppThreads:
    """At most ``threads`` calls run at once and ``queue`` more wait; the rest are refused."""

    def __init__(self, threads: int, queue: int, name: str = "mutls-wsgi") -> None:
        self.threads = threads
        self.queue = queue
        self.name = name
        #: calls given up on since the start, and how many of those still run.
        self.abandoned = 0
        self.stuck = 0
        self._cond = threading.Condition()
        self._work: deque[_Job] = deque()
        self._workers = 0  # threads serving the pool (abandoned ones no longer count)
        self._idle = 0
        self._busy = 0  # calls waiting or running in a pool thread
        self._replaced = 0  # abandoned threads whose place another thread took
        self._closed = False
        self._threads: set[threading.Thread] = set()

    @property
    def busy(self) -> int:
        """Calls waiting or running (abandoned ones excepted)."""
        return self._busy

    def submit(self, fn: Callable[[], Any]) -> tuple[_Job, Future[Any]] | None:
        """Queue ``fn``; ``None`` when every thread is busy and the queue is full."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the app's thread pool is shut down")
            if self._busy >= self.threads + self.queue:
                return None
            self._busy += 1
            job = _Job(fn)
            self._work.append(job)
            self._wake_or_start()
        return job, job.future

    def abandon(self, job: _Job) -> bool:
        """Give up on ``job``: True when its thread runs on without us (counted), False when it
        had finished or not yet started (then it never will)."""
        with self._cond:
            if job.done:
                return False
            if job.thread is None:
                job.future.cancel()  # still queued: the thread that takes it skips it
                return False
            job.abandoned = True
            self.abandoned += 1
            self.stuck += 1
            if self._replaced < self.threads:
                # Another thread takes its place; past the bound the place stays taken, so
                # the pool shrinks (and answers 503) rather than growing without end.
                job.replaced = True
                self._replaced += 1
                self._threads.discard(job.thread)  # shutdown does not wait for it
                self._workers -= 1
                self._busy -= 1
                if self._work:
                    self._wake_or_start()
            return True

    def shutdown(self, timeout: float = 30.0) -> None:
        """Run what is queued, then stop the threads (abandoned ones are not waited for)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            waiting = [t for t in self._threads if t is not threading.current_thread()]
        deadline = time.monotonic() + timeout
        for thread in waiting:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _wake_or_start(self) -> None:
        """With the lock held: an idle thread takes the work, or a new one is started."""
        if self._idle > len(self._work) - 1:
            self._cond.notify()
        elif self._workers < self.threads:
            self._workers += 1
            thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
            self._threads.add(thread)
            thread.start()

    def _serve(self) -> None:
        me = threading.current_thread()
        try:
            while True:
                with self._cond:
                    while not self._work and not self._closed:
                        self._idle += 1
                        self._cond.wait()
                        self._idle -= 1
                    if not self._work:
                        self._workers -= 1
                        return
                    job = self._work.popleft()
                    if not job.future.set_running_or_notify_cancel():
                        self._busy -= 1  # given up on while it waited
                        continue
                    job.thread = me
                result: Any = None
                error: BaseException | None = None
                try:
                    result = job.fn()
                except BaseException as exc:
                    error = exc
                # The place is given back before the caller hears of the result: a request
                # that follows this one's answer must find it free.
                with self._cond:
                    job.done = True
                    leave = job.abandoned and job.replaced
                    if job.abandoned:
                        self.stuck -= 1
                        self._replaced -= leave
                    if not leave:
                        self._busy -= 1
                if error is None:
                    job.future.set_result(result)
                else:
                    job.future.set_exception(error)
                    del error  # no reference cycle through the traceback
                if leave:
                    return  # another thread has our place
        finally:
            with self._cond:
                self._threads.discard(me)
