"""The served connection's lifecycle (mutls.server.lifecycle): the table's shape, a real
connection walking it request by request, and an illegal move refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mutls.apps.base import send_text
from mutls.server import ServerConfig
from mutls.server.deadlines import HEAD
from mutls.server.lifecycle import (
    CLOSED,
    HANDED_OVER,
    IDLE,
    NEW,
    OPENING,
    READING,
    RUNNING,
    TRANSITIONS,
    IllegalTransition,
    Lifecycle,
)
from mutls.server.protocol import ConnectionProtocol, ServerState


class Socket:
    """The transport side of one plain connection: keeps what the server writes."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else None

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class Hello:
    """An app that answers every request with a short text."""

    async def startup(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def handle(self, request: Any, body: bytes, facts: Any, channel: Any) -> None:
        await send_text(channel, 200, "hello")


def served() -> tuple[ConnectionProtocol, Socket]:
    """A plain-HTTP connection just accepted (call inside a running loop)."""
    conn = ConnectionProtocol(ServerState(ServerConfig(port=0), app=Hello()))
    sock = Socket()
    conn.connection_made(sock)  # type: ignore[arg-type]
    return conn, sock


def test_every_state_is_reachable_and_only_the_final_ones_end() -> None:
    reached, todo = {OPENING}, [OPENING]
    while todo:
        for state in TRANSITIONS[todo.pop()]:
            if state not in reached:
                reached.add(state)
                todo.append(state)
    assert reached == set(Lifecycle)
    assert {state for state in Lifecycle if not state.successors} == {HANDED_OVER, CLOSED}
    for state in set(Lifecycle) - {HANDED_OVER, CLOSED}:
        assert CLOSED in state.successors  # a connection can be lost in any live state
    assert all(state.successors == TRANSITIONS[state] for state in Lifecycle)


def test_a_kept_alive_request_walks_reading_running_idle() -> None:
    async def body() -> tuple[list[Lifecycle], Socket]:
        conn, sock = served()
        seen = [conn.lifecycle]
        conn.close_when_idle()  # a new connection's first request is let in
        seen.append(conn.lifecycle)
        conn._closing = False
        conn.data_received(b"GET / HTTP/1.1\r\nHost: h\r\n")
        seen.append(conn.lifecycle)
        conn.data_received(b"\r\n")
        seen.append(conn.lifecycle)
        assert conn.task is not None
        await conn.task
        seen.append(conn.lifecycle)
        conn.close_when_idle()  # between requests: closed at once
        seen.append(conn.lifecycle)
        conn.connection_lost(None)
        seen.append(conn.lifecycle)
        return seen, sock

    seen, sock = asyncio.run(body())
    assert seen == [NEW, NEW, READING, RUNNING, IDLE, CLOSED, CLOSED]
    assert sock.out.startswith(b"HTTP/1.1 200 ") and sock.out.endswith(b"hello\n")
    assert sock.closed


def test_a_pipelined_request_is_read_as_soon_as_the_last_is_answered() -> None:
    async def body() -> list[Lifecycle]:
        conn, _ = served()
        moves: list[Lifecycle] = []
        enter = conn._enter

        def record(new: Lifecycle) -> None:
            moves.append(new)
            enter(new)

        conn._enter = record  # type: ignore[method-assign]
        conn.data_received(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
        for _ in range(100):  # a few turns of the loop run both apps
            if conn.lifecycle is IDLE:
                break
            await asyncio.sleep(0)
        return moves

    # the second request was parsed with the first: after the first answer it is being read
    # (its deadline the head's), then runs
    assert asyncio.run(body()) == [READING, RUNNING, READING, RUNNING, IDLE]


def test_a_connection_closed_under_its_app_is_closed_once_the_app_is_done() -> None:
    async def body() -> ConnectionProtocol:
        conn, sock = served()
        conn.data_received(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        task = conn.task
        assert task is not None and conn.lifecycle is RUNNING
        sock.closed = True  # aborted meanwhile (or a write failed): connection_lost comes next
        await task
        return conn

    conn = asyncio.run(body())
    # not left RUNNING without a task: a request queued for its turn must not start
    assert conn.lifecycle is CLOSED and conn.lost and conn.task is None


def test_a_head_deadline_answers_408_only_to_a_request_begun() -> None:
    async def body() -> tuple[ConnectionProtocol, Socket, ConnectionProtocol, Socket]:
        quiet, quiet_sock = served()
        quiet._phase_due(HEAD)
        begun, begun_sock = served()
        begun.data_received(b"GET / HT")
        begun._phase_due(HEAD)
        return quiet, quiet_sock, begun, begun_sock

    quiet, quiet_sock, begun, begun_sock = asyncio.run(body())
    assert quiet.lifecycle is CLOSED and quiet.lost and quiet_sock.out == b""
    assert begun.lifecycle is CLOSED and begun_sock.out.startswith(b"HTTP/1.1 408 ")


def test_an_illegal_transition_is_an_error_and_moves_nothing() -> None:
    async def body() -> None:
        conn, _ = served()
        with pytest.raises(IllegalTransition, match="from new to idle") as caught:
            conn._enter(IDLE)  # no response went out: never idle
        assert caught.value.old is NEW and caught.value.new is IDLE
        assert conn.lifecycle is NEW and not conn.lost
        conn._enter(CLOSED)
        with pytest.raises(IllegalTransition, match="from closed to reading"):
            conn._enter(READING)  # a final state has no way out
        assert conn.lifecycle is CLOSED and conn.lost

    asyncio.run(body())
