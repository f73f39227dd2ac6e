"""--timeout-send on the connection's one timer (server.deadlines), on a hand-turned clock: the
clock starts when the transport pauses writing, a client that reads anything gets another
period, and one that reads nothing for the whole period is dropped and logged (the real server
and a client that never reads: tests/conformance/test_tls_records.py)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any

import pytest

from mutls.server import ServerConfig, Timeouts
from mutls.server.deadlines import NEXT_REQUEST
from mutls.server.lifecycle import IDLE, READING, RUNNING
from mutls.server.protocol import ConnectionProtocol, ServerState

SEND = 1.0


class Timer:
    """What ``call_at`` returns: only ``cancel`` is used."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """The part of an event loop the connection's timer uses, turned by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self._due: list[tuple[float, int, Timer, Callable[[], None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer()
        heapq.heappush(self._due, (when, next(self._order), timer, callback))
        return timer

    def advance_to(self, when: float) -> None:
        """Run, in order, every timer due by ``when``."""
        while self._due and self._due[0][0] <= when:
            at, _, timer, callback = heapq.heappop(self._due)
            self.now = at
            if not timer.cancelled:
                callback()
        self.now = when


class Transport:
    """A socket the test fills: ``buffered`` is what the client has not read yet."""

    def __init__(self) -> None:
        self.buffered = 0
        self.aborted = False
        self.closing = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else None

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing or self.aborted

    def write(self, data: bytes) -> None:
        self.buffered += len(data)

    def close(self) -> None:
        self.closing = True  # a real transport then waits for its buffer to be read

    def abort(self) -> None:
        self.aborted = True


def connect(clock: Clock, transport: Transport) -> ConnectionProtocol:
    timeouts = Timeouts(header=100.0, keep_alive=100.0, send=SEND)
    state = ServerState(ServerConfig(port=0, timeouts=timeouts), app=object())  # type: ignore[arg-type]
    conn = ConnectionProtocol(state)
    conn.loop = clock  # type: ignore[assignment]
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn


def on_a_clock(test: Callable[[Clock, Transport], None]) -> None:
    async def body() -> None:  # the protocol is made in a running loop, then uses the clock
        test(Clock(), Transport())

    asyncio.run(body())


def test_reading_resets_the_clock(caplog: pytest.LogCaptureFixture) -> None:
    def test(clock: Clock, transport: Transport) -> None:
        conn = connect(clock, transport)
        transport.buffered = 1 << 20
        conn.pause_writing()
        clock.advance_to(0.9 * SEND)
        conn.resume_writing()  # the client read enough for the transport to want more
        conn.pause_writing()  # and the next part filled the buffer again
        clock.advance_to(1.5 * SEND)  # past the first deadline
        assert not transport.aborted
        clock.advance_to(2.0 * SEND)  # a whole period since the last progress
        assert transport.aborted

    with caplog.at_level(logging.INFO, logger="mutls.server"):
        on_a_clock(test)
    assert "read nothing for 1 s (--timeout-send)" in caplog.text


def test_a_slow_reader_is_not_a_stalled_one() -> None:
    def test(clock: Clock, transport: Transport) -> None:
        conn = connect(clock, transport)
        transport.buffered = 100_000
        conn.pause_writing()
        clock.advance_to(0.5 * SEND)
        transport.buffered -= 1000  # read, too little to resume writing
        clock.advance_to(1.2 * SEND)
        assert not transport.aborted
        clock.advance_to(2.1 * SEND)  # nothing read in the second period
        assert transport.aborted

    on_a_clock(test)


def test_without_a_stall_there_is_no_send_deadline() -> None:
    def test(clock: Clock, transport: Transport) -> None:
        conn = connect(clock, transport)
        conn.pause_writing()
        conn.resume_writing()
        clock.advance_to(10 * SEND)
        assert not transport.aborted and not transport.closing

    on_a_clock(test)


def test_a_close_stalled_by_the_client_is_dropped() -> None:
    def test(clock: Clock, transport: Transport) -> None:
        conn = connect(clock, transport)
        for state in (READING, RUNNING, IDLE):  # a response went out (a graceful stop
            conn._enter(state)  # closes such a one)
        transport.buffered = 1 << 20
        conn.pause_writing()
        conn.close_when_idle()  # the close waits for the buffer: the send clock still runs
        assert transport.closing and not transport.aborted
        clock.advance_to(1.1 * SEND)
        assert transport.aborted

    on_a_clock(test)


def test_the_phase_deadline_still_fires_while_a_send_is_stalled() -> None:
    def test(clock: Clock, transport: Transport) -> None:
        conn = connect(clock, transport)
        conn.pause_writing()
        conn._arm(0.5 * SEND, NEXT_REQUEST)  # earlier than the send deadline
        clock.advance_to(0.6 * SEND)
        assert transport.closing  # the idle connection was closed at its own deadline

    on_a_clock(test)
