"""One timer per connection for all its deadlines.

A deadline, not a timer per phase: re-arming for every request (call_later + cancel, ~1.9 us a
pair on uvloop, two pairs per keep-alive request) cost ~10% of a request. The timer fires at the
earliest deadline set and follows a later one, so moving a deadline on is two stores.

A connection has two: the phase's (TLS handshake, request head, body, next request: one at a
time) and the send's (--timeout-send, only while the client reads nothing), which runs beside
any phase because a response stalls in any of them, and a close waits for the buffer too.

A base class of the connection rather than an object it holds: the calls stay as cheap as
before on the hot path, and a connection and its timer make no reference cycle, so a closed
connection is freed at once (not at the garbage collector's next pass).
"""

from __future__ import annotations

import asyncio
import enum

#: a timer may fire this early (libuv counts milliseconds) and still count as due.
TIMER_SLACK_S = 0.002


class Phase(enum.Enum):
    """What a connection's phase deadline waits for; the value is the log's name for it."""

    PROXY_HEADER = "PROXY header"
    HANDSHAKE = "TLS handshake"
    HEAD = "request head"
    BODY = "request body"
    NEXT_REQUEST = "next request"


# The members as module names: ``Phase.HEAD`` is a lookup on the enum's metaclass (~10 times a
# global's cost), and the hot path arms a phase twice a request.
PROXY_HEADER, HANDSHAKE, HEAD, BODY, NEXT_REQUEST = Phase


class ConnectionDeadlines:
    """The phase and send deadlines of a connection on one timer; the connection defines
    :meth:`_phase_due` and :meth:`_send_due`, and ``loop``."""

    loop: asyncio.AbstractEventLoop
    _timer: asyncio.TimerHandle | None = None
    _timer_at = 0.0
    _phase: float | None = None
    _phase_what = NEXT_REQUEST
    _send: float | None = None

    def _phase_due(self, phase: Phase) -> None:
        """The ``phase`` (as given to :meth:`_arm`) ran out of time."""
        raise NotImplementedError

    def _send_due(self) -> None:
        """The send deadline (:meth:`_arm_send`) passed."""
        raise NotImplementedError

    def _arm(self, seconds: float, phase: Phase) -> None:
        """The current ``phase`` must end within ``seconds``."""
        deadline = self.loop.time() + seconds
        self._phase = deadline
        self._phase_what = phase
        if self._timer is None or self._timer_at > deadline:
            self._wake_at(deadline)

    def _disarm(self) -> None:
        """No phase deadline (a request is running)."""
        self._phase = None  # a pending timer then finds nothing due

    def _arm_send(self, seconds: float) -> None:
        """The client must read within ``seconds``."""
        deadline = self._send = self.loop.time() + seconds
        if self._timer is None or self._timer_at > deadline:
            self._wake_at(deadline)

    def _disarm_send(self) -> None:
        """The client is reading again."""
        self._send = None

    def _release_deadlines(self) -> None:
        """The connection is closing: no phase deadline, and the timer is freed unless the
        close still waits for the client to read."""
        self._phase = None
        if self._send is None:
            self._stop_timer()

    def _stop_deadlines(self) -> None:
        """The connection is gone: no deadline, no timer."""
        self._phase = self._send = None
        self._stop_timer()

    def _wake_at(self, when: float) -> None:
        self._stop_timer()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time() + TIMER_SLACK_S
        if self._send is not None and now >= self._send:
            self._send = None
            self._send_due()  # may arm the send deadline again, or stop everything
        if self._phase is not None and now >= self._phase:
            self._phase = None
            self._phase_due(self._phase_what)
        # this timer served every deadline: follow the earliest still ahead
        ahead = [at for at in (self._phase, self._send) if at is not None]
        if ahead:
            self._wake_at(min(ahead))
