"""sd_notify without libsystemd: nothing without NOTIFY_SOCKET, a datagram to a path or an
abstract socket, silence in any process but the main one, RELOADING then READY around a block."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mutls.server import systemd


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    yield sock
    sock.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_a_path(listener: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.getsockname())
    assert systemd.notify("READY=1")
    assert listener.recv(100) == b"READY=1"
    with systemd.reloading():
        assert listener.recv(100).startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert listener.recv(100) == b"READY=1"


def test_an_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"mutls-unit-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("STOPPING=1")
        assert sock.recv(100) == b"STOPPING=1"


def test_only_the_main_process_speaks(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", listener.getsockname())
    monkeypatch.setattr(systemd, "_MAIN_PID", os.getpid() + 1)  # as in a forked worker
    assert systemd.notify("READY=1") is False


def test_listen_fds_for_another_process_are_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd.inherited_sockets() is None
    assert os.environ["LISTEN_FDS"] == "1"


def test_listen_fds_are_taken_and_the_variables_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        fd = os.dup(server.fileno())
        target = systemd.LISTEN_FDS_START
        try:
            saved: int | None = os.dup(target)  # fd 3 may be pytest's: put it back after
        except OSError:
            saved = None
        try:
            os.dup2(fd, target)
            monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
            monkeypatch.setenv("LISTEN_FDS", "1")
            sockets = systemd.inherited_sockets()
            assert sockets is not None and len(sockets) == 1
            assert sockets[0].getsockname() == server.getsockname()
            assert "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ
            sockets[0].detach()
        finally:
            if saved is None:
                os.close(target)
            else:
                os.dup2(saved, target)
                os.close(saved)
            os.close(fd)
