"""``AppThreads``: a bounded queue that says no, and threads that can be given up on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from mutls.apps.threads import AppThreads


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave a thread blocked


def blocker(release: threading.Event, started: threading.Semaphore) -> Callable[[], str]:
    def call() -> str:
        started.release()
        release.wait(10)
        return "done"

    return call


def test_runs_calls_and_refuses_past_threads_plus_queue(release: threading.Event) -> None:
    pool = AppThreads(threads=2, queue=1)
    started = threading.Semaphore(0)
    jobs = [pool.submit(blocker(release, started)) for _ in range(3)]
    assert all(job is not None for job in jobs)
    assert started.acquire(timeout=5) and started.acquire(timeout=5)
    assert pool.submit(lambda: None) is None  # 2 running + 1 waiting: full
    assert pool.busy == 3
    release.set()
    assert [j[1].result(5) for j in jobs if j is not None] == ["done"] * 3
    deadline = time.monotonic() + 5
    while pool.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.busy == 0
    submitted = pool.submit(lambda: 42)
    assert submitted is not None and submitted[1].result(5) == 42
    pool.shutdown(5)


def test_an_abandoned_thread_is_counted_and_replaced(release: threading.Event) -> None:
    pool = AppThreads(threads=1, queue=0)
    started = threading.Semaphore(0)
    stuck = pool.submit(blocker(release, started))
    assert stuck is not None and started.acquire(timeout=5)
    assert pool.submit(lambda: 1) is None
    assert pool.abandon(stuck[0]) is True
    assert (pool.abandoned, pool.stuck, pool.busy) == (1, 1, 0)
    replacement = pool.submit(lambda: 2)
    assert replacement is not None and replacement[1].result(5) == 2
    release.set()
    assert stuck[1].result(5) == "done"
    deadline = time.monotonic() + 5
    while pool.stuck and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (pool.abandoned, pool.stuck) == (1, 0)
    pool.shutdown(5)


def test_replacements_are_bounded_and_queued_calls_are_dropped(release: threading.Event) -> None:
    pool = AppThreads(threads=1, queue=1)
    started = threading.Semaphore(0)
    first = pool.submit(blocker(release, started))
    assert first is not None and started.acquire(timeout=5)
    queued = pool.submit(lambda: "never")
    assert queued is not None
    assert pool.abandon(queued[0]) is False  # not started: dropped, never run
    assert queued[1].cancelled()
    assert pool.abandon(first[0]) is True  # replaced (1 of at most 1)
    second = pool.submit(blocker(release, started))
    assert second is not None and started.acquire(timeout=5)
    assert pool.abandon(second[0]) is True  # past the bound: counted, but keeps its place
    assert pool.abandoned == 2 and pool.stuck == 2
    assert pool.busy == 1
    release.set()
    pool.shutdown(5)


def test_shutdown_does_not_wait_for_an_abandoned_thread(release: threading.Event) -> None:
    pool = AppThreads(threads=1, queue=0)
    started = threading.Semaphore(0)
    stuck = pool.submit(blocker(release, started))
    assert stuck is not None and started.acquire(timeout=5)
    pool.abandon(stuck[0])
    pool.shutdown(30)  # waiting for the stuck call would outlast it (10 s): it would be done
    assert not stuck[1].done()
