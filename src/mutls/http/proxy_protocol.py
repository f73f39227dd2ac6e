"""The PROXY protocol header (HAProxy's, versions 1 and 2) that a TCP load balancer sends
before anything else on a connection, saying whom the connection is for.

Sans-I/O: bytes in (:meth:`ProxyHeaderReader.receive_data`), a :class:`ProxyHeader` out once
the header is whole, with the bytes that followed it (the client's TLS ClientHello). Strict, as
the specification (haproxy's doc/proxy-protocol.txt) asks: any sequence that does not match it
exactly is an error and the connection is dropped. Bounded: a version 1 line is at most 107
bytes, a version 2 header 16 bytes plus the length it announces.

What it does not decide: whether the peer may send a header at all (only trusted peers may:
:mod:`mutls.server.proxy_protocol`). A ``LOCAL`` command (the balancer's health check), ``UNKNOWN``
(v1) and the families it cannot represent (``AF_UNSPEC``, ``AF_UNIX``, a non-stream protocol)
mean "use the real connection's addresses": :attr:`ProxyHeader.source` is then ``None``.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

Address = tuple[str, int]

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: the longest version 1 line, CRLF included ("PROXY UNKNOWN" with two IPv6 addresses).
V1_MAX = 107
V2_FIXED = 16
#: the v2 address block sizes: AF_INET, AF_INET6 (addresses and ports), AF_UNIX (paths).
_V2_INET, _V2_INET6, _V2_UNIX = 12, 36, 216


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header (the connection must be dropped)."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed header: the original client (``source``) and the address it connected to
    (``destination``), or ``None`` for both when the real connection's addresses apply;
    ``version`` 1 or 2; ``rest`` the bytes after the header."""

    version: int
    source: Address | None
    destination: Address | None
    rest: bytes = b""


class ProxyHeaderReader:
    """Reads one PROXY header from the start of a connection."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.header: ProxyHeader | None = None

    def receive_data(self, data: bytes) -> ProxyHeader | None:
        """Take bytes; the header once it is whole (``None``: more are needed). Raises
        :class:`ProxyHeaderError` as soon as the bytes cannot be a valid header."""
        if self.header is not None:
            raise ProxyHeaderError("the header was already read")
        self._buffer += data
        buffer = bytes(self._buffer)
        if buffer[:1] == b"P":
            found = _v1(buffer)
        elif buffer[:1] == b"\r":
            found = _v2(buffer)
        elif buffer:
            raise ProxyHeaderError("no PROXY protocol header (the connection starts otherwise)")
        else:
            found = None
        if found is not None:
            self.header = found
            self._buffer.clear()
        return found

    @property
    def pending(self) -> int:
        """Bytes of a header begun and not yet whole."""
        return len(self._buffer)

    def receive_eof(self) -> None:
        """The peer closed before the header was whole."""
        raise ProxyHeaderError("connection closed before the end of the PROXY header")


def _v1(buffer: bytes) -> ProxyHeader | None:
    head = buffer[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(head):
        raise ProxyHeaderError("no PROXY protocol header (the connection starts otherwise)")
    end = buffer.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(buffer) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1 line longer than {V1_MAX} bytes")
        if b"\n" in buffer or b"\r" in buffer[:-1]:
            raise ProxyHeaderError("PROXY v1 line not ended by CRLF")
        return None
    line = buffer[:end]
    rest = buffer[end + 2 :]
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not US-ASCII") from None
    if "\r" in text or "\n" in text:
        raise ProxyHeaderError("PROXY v1 line not ended by CRLF")
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(1, None, None, rest)  # the rest of the line is to be ignored
    if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"PROXY v1 line malformed: {text[:V1_MAX]!r}")
    version = 4 if parts[1] == "TCP4" else 6
    source = _v1_address(parts[2], parts[4], version)
    destination = _v1_address(parts[3], parts[5], version)
    return ProxyHeader(1, source, destination, rest)


def _v1_address(host: str, port: str, version: int) -> Address:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ProxyHeaderError(f"PROXY v1 address malformed: {host!r}") from None
    if address.version != version or "%" in host:
        raise ProxyHeaderError(f"PROXY v1 address {host!r} is not TCP{version}")
    if not (port.isascii() and port.isdigit()) or (len(port) > 1 and port[0] == "0"):
        raise ProxyHeaderError(f"PROXY v1 port malformed: {port!r}")
    number = int(port)
    if number > 65535:
        raise ProxyHeaderError(f"PROXY v1 port out of range: {port}")
    return (str(address), number)


def _v2(buffer: bytes) -> ProxyHeader | None:
    head = buffer[: len(V2_SIGNATURE)]
    if not V2_SIGNATURE.startswith(head):
        raise ProxyHeaderError("no PROXY protocol header (the connection starts otherwise)")
    if len(buffer) < V2_FIXED:
        if len(buffer) > len(V2_SIGNATURE) and buffer[12] >> 4 != 2:
            raise ProxyHeaderError("PROXY v2 header of another version")
        return None
    version_command, family_protocol, length = struct.unpack_from("!BBH", buffer, 12)
    if version_command >> 4 != 2:
        raise ProxyHeaderError("PROXY v2 header of another version")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyHeaderError(f"PROXY v2 command unknown: {command}")
    family, protocol = family_protocol >> 4, family_protocol & 0x0F
    if family > 3 or protocol > 2:
        raise ProxyHeaderError(f"PROXY v2 address family/protocol unknown: {family_protocol:#04x}")
    if len(buffer) < V2_FIXED + length:
        return None
    block = buffer[V2_FIXED : V2_FIXED + length]
    rest = buffer[V2_FIXED + length :]
    if command == 0:  # LOCAL: the balancer's own connection (a health check)
        return ProxyHeader(2, None, None, rest)
    needed = {1: _V2_INET, 2: _V2_INET6, 3: _V2_UNIX}.get(family, 0)
    if len(block) < needed:
        raise ProxyHeaderError(
            f"PROXY v2 address block too short: {len(block)} bytes for family {family}"
        )
    if family not in (1, 2) or protocol != 1:
        return ProxyHeader(2, None, None, rest)  # not TCP: the real endpoints apply
    size = 4 if family == 1 else 16
    src = ipaddress.ip_address(block[:size])
    dst = ipaddress.ip_address(block[size : 2 * size])
    sport, dport = struct.unpack_from("!HH", block, 2 * size)
    return ProxyHeader(2, (str(src), sport), (str(dst), dport), rest)


def v1_header(source: Address, destination: Address) -> bytes:
    """A version 1 line for a TCP connection (what HAProxy's ``send-proxy`` sends)."""
    kind = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {kind} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def v2_header(source: Address | None, destination: Address | None = None) -> bytes:
    """A version 2 header (``send-proxy-v2``): PROXY for a TCP connection, LOCAL without
    addresses."""
    if source is None or destination is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    block = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(block)) + block
