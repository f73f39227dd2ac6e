"""The client and scheme a chain of HTTP proxies reports: ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``Forwarded`` (RFC 7239).

Sans-I/O: request headers and a test "is this address a trusted proxy" in, a :class:`Relayed`
(or ``None``) out. Whether to call this at all (the TCP peer must be a trusted proxy) is the
caller's decision (:mod:`mutls.apps.proxy_headers`).

Each proxy appends the address it received the request from, so the list is read from the right:
entries that are trusted proxies are skipped and the first one that is not is the client (what
uvicorn's ``--forwarded-allow-ips`` does; Werkzeug's ``ProxyFix`` counts hops instead). When
every entry is trusted, the leftmost is the client. An entry that is not an IP address
(``unknown``, an obfuscated ``_name``, garbage) ends the walk: the client is then the last
address known, the trusted proxy that wrote that entry, never a name a client could have chosen.

``Forwarded`` and ``X-Forwarded-*`` are two spellings of one claim. A proxy sets one and passes
the other on as the client sent it, so when both are present and disagree one of them is the
client's own words and nobody can tell which: neither is believed (:attr:`Relayed.conflict`).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Address = tuple[str, int]
#: the most list elements read from one header (a longer chain is cut from the left: only the
#: rightmost entries, the ones trusted proxies wrote, can matter).
MAX_HOPS = 32
#: the longest header value read; a longer one is ignored (nothing a proxy chain sends).
MAX_VALUE_BYTES = 8 * 1024

FORWARDED = b"forwarded"
X_FORWARDED_FOR = b"x-forwarded-for"
X_FORWARDED_PROTO = b"x-forwarded-proto"
#: what X-Forwarded-Proto / proto= may say, and the scheme an HTTP app then sees.
SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

# RFC 7239: forwarded-pair = token "=" value, value = token / quoted-string
_PAIR = re.compile(
    r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=([!#$%&\'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\]|\\.)*")\s*'
)


@dataclass(frozen=True)
class Relayed:
    """What the headers say: the client (``None``: they name none usable) and the scheme of the
    client's request (``None``: they do not say). ``conflict`` names the two headers when they
    disagree (then both other fields are ``None``)."""

    client: Address | None = None
    scheme: str | None = None
    conflict: str | None = None


NOTHING = Relayed()


def _elements(found: list[bytes]) -> list[str] | None:
    """The comma-separated elements of a field's lines, in order (``None``: absent or too
    long)."""
    if not found:
        return None
    joined = b",".join(found)
    if len(joined) > MAX_VALUE_BYTES:
        return None
    return [item.strip() for item in joined.decode("latin-1").split(",")][-MAX_HOPS:]


def _fields(headers: Sequence[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    """The lines of the three fields, in one pass over the request's headers."""
    found: dict[bytes, list[bytes]] = {X_FORWARDED_FOR: [], X_FORWARDED_PROTO: [], FORWARDED: []}
    for key, value in headers:
        lines = found.get(key.lower())
        if lines is not None:
            lines.append(value)
    return found


#: longer than "[" + the longest IPv6 text (45) + "]:65535": not an address.
MAX_NODE = 56


def parse_node(text: str) -> Address | None:
    """An address from an ``X-Forwarded-For`` entry or a ``for=`` value: ``192.0.2.1``,
    ``192.0.2.1:4711``, ``2001:db8::1``, ``[2001:db8::1]:4711``; ``None`` for anything else."""
    return None if len(text) > MAX_NODE else _parse_node(text)


@functools.lru_cache(maxsize=4096)  # the same proxies and clients come back request after request
def _parse_node(text: str) -> Address | None:
    host, port = text, 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port_text = rest[1:]
            if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
                return None
            port = int(port_text)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5):
            return None
        port = int(port_text)
    if "%" in host or port > 65535:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if text.startswith("[") and address.version != 6:
        return None
    return (str(address), port)


def _walk(nodes: Sequence[Address | None], trusted: Callable[[str], bool]) -> int | None:
    """The index of the client in ``nodes`` (rightmost untrusted, leftmost if all are
    trusted), or of the entry right of an unusable one; ``None`` when the rightmost entry is
    unusable."""
    chosen: int | None = None
    for index in range(len(nodes) - 1, -1, -1):
        node = nodes[index]
        if node is None:
            return chosen
        chosen = index
        if not trusted(node[0]):
            return index
    return chosen


def x_forwarded(
    for_lines: list[bytes], proto_lines: list[bytes], trusted: Callable[[str], bool]
) -> Relayed:
    """The client and scheme ``X-Forwarded-For`` and ``X-Forwarded-Proto`` (their lines)
    report.

    The scheme is the ``X-Forwarded-Proto`` entry of the chosen client's hop when the two lists
    have as many entries (one per hop), else its last entry (the nearest proxy's).
    """
    entries = _elements(for_lines)
    protos = _elements(proto_lines)
    client: Address | None = None
    index: int | None = None
    if entries:
        nodes = [parse_node(entry) for entry in entries]
        index = _walk(nodes, trusted)
        if index is not None:
            client = nodes[index]
    scheme = None
    if protos:
        aligned = entries is not None and index is not None and len(protos) == len(entries)
        chosen = protos[index] if aligned and index is not None else protos[-1]
        scheme = SCHEMES.get(chosen.lower())
    return Relayed(client, scheme)


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """RFC 7239 elements as dicts of (lower-case) parameter names to values (quotes removed);
    ``None`` when the value is malformed."""
    elements: list[dict[str, str]] = []
    for element in _split_outside_quotes(value, ","):
        pairs: dict[str, str] = {}
        if not element.strip():
            return None
        for pair in _split_outside_quotes(element, ";"):
            match = _PAIR.fullmatch(pair)
            if match is None:
                return None
            name, text = match[1].lower(), match[2]
            if text.startswith('"'):
                text = re.sub(r"\\(.)", r"\1", text[1:-1])
            if name in pairs:  # RFC 7239 section 4: a parameter at most once per element
                return None
            pairs[name] = text
        elements.append(pairs)
    return elements


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def forwarded(found: list[bytes], trusted: Callable[[str], bool]) -> Relayed:
    """The client and scheme ``Forwarded`` (its lines) reports (the ``for=`` and ``proto=`` of
    one element); nothing when the header is absent or malformed."""
    if not found:
        return Relayed()
    joined = b",".join(found)
    if len(joined) > MAX_VALUE_BYTES:
        return Relayed()
    elements = parse_forwarded(joined.decode("latin-1"))
    if not elements:
        return Relayed()
    elements = elements[-MAX_HOPS:]
    nodes = [parse_node(e["for"]) if "for" in e else None for e in elements]
    index = _walk(nodes, trusted)
    # without a usable for=, the scheme is the nearest proxy's element's
    proto = elements[-1 if index is None else index].get("proto")
    return Relayed(
        None if index is None else nodes[index], SCHEMES.get(proto.lower()) if proto else None
    )


def relayed(headers: Sequence[tuple[bytes, bytes]], trusted: Callable[[str], bool]) -> Relayed:
    """The client and scheme the proxy headers report (both spellings; see the module docs)."""
    found = _fields(headers)
    old = x_forwarded(found[X_FORWARDED_FOR], found[X_FORWARDED_PROTO], trusted)
    new = forwarded(found[FORWARDED], trusted)
    if new == NOTHING:
        return old
    if old == NOTHING:
        return new
    clients_agree = old.client is None or new.client is None or old.client[0] == new.client[0]
    schemes_agree = old.scheme is None or new.scheme is None or old.scheme == new.scheme
    if not (clients_agree and schemes_agree):
        return Relayed(conflict="Forwarded and X-Forwarded-For/-Proto disagree")
    return Relayed(new.client or old.client, new.scheme or old.scheme)
