"""systemd: readiness notifications (``Type=notify``) and socket activation, without libsystemd.

:func:`notify` sends sd_notify(3)'s datagram to ``$NOTIFY_SOCKET`` (a path, or an abstract
socket written ``@name``): ``READY=1`` once listening, ``STOPPING=1`` when a graceful stop
begins, ``RELOADING=1`` (with ``MONOTONIC_USEC``, as systemd 253's ``Type=notify-reload`` wants)
then ``READY=1`` around a reload. Without ``NOTIFY_SOCKET`` it does nothing. Only the process
that imported this module first (the one systemd started, the ``MainPID``) speaks: forked workers
stay silent, as systemd would refuse their messages anyway (``NotifyAccess=main``).

:func:`inherited_sockets` takes the listening sockets systemd passes (``LISTEN_FDS``, from file
descriptor 3, when ``LISTEN_PID`` is this process; the variables are then removed so that a
child does not take them for its own, as sd_listen_fds(3) does with ``unset_environment``) or
the ones ``--fd`` names.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

from mutls.server.log import log

#: the first file descriptor systemd passes (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
_MAIN_PID = os.getpid()


class InheritedSocketError(OSError):
    """A file descriptor given to serve is not a listening TCP socket."""


def notify(state: str) -> bool:
    """Send ``state`` (``READY=1``, ...) to systemd; False when not asked to (no
    ``NOTIFY_SOCKET``, or this is not the main process) or when it fails (logged)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or os.getpid() != _MAIN_PID:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET=%s: not a path nor @abstract: systemd not notified", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("NOTIFY_SOCKET: cannot tell systemd %s: %s", state.split("\n")[0], exc)
        return False
    return True


@contextlib.contextmanager
def reloading() -> Iterator[None]:
    """``RELOADING=1`` before the block, ``READY=1`` after it (whatever the block's outcome: a
    failed reload keeps serving what it served)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")
    try:
        yield
    finally:
        notify("READY=1")


def inherited_sockets(fds: tuple[int, ...] = ()) -> list[socket.socket] | None:
    """The listening sockets to serve instead of binding: ``fds`` (``--fd``), else systemd's
    (``LISTEN_FDS``); ``None`` when there are none. Raises :class:`InheritedSocketError`."""
    what = "--fd"
    if not fds:
        fds = _listen_fds()
        what = "LISTEN_FDS"
    if not fds:
        return None
    return [_listening(fd, what) for fd in fds]


def _listen_fds() -> tuple[int, ...]:
    """systemd's file descriptors for this process (sd_listen_fds(3)); the variables removed."""
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if pid is None or count is None:
        return ()
    if not pid.isdigit() or int(pid) != os.getpid():
        return ()  # meant for another process (an ancestor's, inherited)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count.isdigit():
        log.warning("LISTEN_FDS=%s: not a number: ignored", count)
        return ()
    return tuple(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)))


def _listening(fd: int, what: str) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise InheritedSocketError(f"{what} {fd}: not a socket ({exc.strerror})") from None
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            raise InheritedSocketError(f"{what} {fd}: not a TCP socket (IPv4 or IPv6)")
        if sock.type != socket.SOCK_STREAM:
            raise InheritedSocketError(f"{what} {fd}: not a stream (TCP) socket")
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise InheritedSocketError(f"{what} {fd}: the socket is not listening")
    except InheritedSocketError:
        sock.detach()  # not ours to close
        raise
    sock.setblocking(False)
    sock.set_inheritable(False)  # the app's child processes must not hold it
    return sock
