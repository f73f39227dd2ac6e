"""How an allow rule's value matches a certificate's names, one kind of name at a time.

Wildcards never cross the boundary that gives a name its meaning, so a pattern cannot admit
more than it reads as admitting:

- distinguished names are compared attribute by attribute (same attributes, same order),
  values case-insensitively (RFC 5280 7.1); ``*`` stays inside one value, so ``CN=*,O=Example``
  never admits ``CN=x,OU=evil,O=Example``;
- DNS names: ``*`` stays inside one label (``*.example.org`` admits ``a.example.org``, not
  ``a.b.example.org``), case-insensitively;
- email: the local part and the domain separately (``*@example.org``), the domain
  case-insensitively;
- URIs and SPIFFE IDs: ``*`` stays inside one path segment and ``**`` spans any number, so
  ``spiffe://example.org/ns/*/sa/web`` admits one namespace level and
  ``spiffe://example.org/**`` the whole trust domain.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache

from cryptography import x509

from mutls.errors import MutlsError


class RuleError(MutlsError):
    """An allow rule that cannot be understood; the message names the file and the rule."""


def _glob(pattern: str, separators: str, *, fold: bool) -> re.Pattern[str]:
    """A regex for ``pattern``: ``*`` (not across ``separators``), ``**`` (anything), ``?``."""
    parts: list[str] = []
    stop = f"[^{re.escape(separators)}]" if separators else "."
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append(f"{stop}*")
            i += 1
        elif pattern[i] == "?":
            parts.append(stop)
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts), re.IGNORECASE if fold else 0)


@lru_cache(maxsize=1024)
def _compiled(pattern: str, separators: str, fold: bool) -> re.Pattern[str]:
    return _glob(pattern, separators, fold=fold)


def glob_match(pattern: str, value: str, separators: str = "", *, fold: bool = False) -> bool:
    """``value`` matches ``pattern`` (``*`` not crossing ``separators``; ``**`` anything)."""
    return _compiled(pattern, separators, fold).fullmatch(value) is not None


# -- distinguished names -----------------------------------------------------------------------


def _value(attribute: x509.NameAttribute[str | bytes]) -> str:
    value = attribute.value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def name_matches(pattern: x509.Name, name: x509.Name, *, wildcards: bool) -> bool:
    """``name`` has ``pattern``'s attributes in its order, each value equal (case folded) or,
    with ``wildcards``, matching it (``*`` within the one value)."""
    mine, theirs = list(pattern.rdns), list(name.rdns)
    if len(mine) != len(theirs):
        return False
    for want, have in zip(mine, theirs, strict=True):
        wanted = sorted(((a.oid.dotted_string, _value(a)) for a in want), key=lambda p: p[0])
        had = sorted(((a.oid.dotted_string, _value(a)) for a in have), key=lambda p: p[0])
        if [oid for oid, _ in wanted] != [oid for oid, _ in had]:
            return False
        for (_, expected), (_, actual) in zip(wanted, had, strict=True):
            if wildcards:
                if not glob_match(expected, actual, fold=True):
                    return False
            elif expected.casefold() != actual.casefold():
                return False
    return True


# -- subject alternative names -----------------------------------------------------------------


def dns_matches(pattern: str, name: str) -> bool:
    """A DNS name against a pattern whose ``*`` stays inside one label."""
    return glob_match(pattern.rstrip("."), name.rstrip("."), ".", fold=True)


def email_matches(pattern: str, address: str) -> bool:
    """An email address: the local part as written, the domain case-insensitively."""
    want_local, at, want_domain = pattern.rpartition("@")
    local, at2, domain = address.rpartition("@")
    if not at or not at2:
        return False
    return glob_match(want_local, local) and dns_matches(want_domain, domain)


def uri_matches(pattern: str, uri: str) -> bool:
    """A URI whose ``*`` stays inside one path segment (``**`` spans several)."""
    return glob_match(pattern, uri, "/")


SPIFFE_ID = re.compile(r"spiffe://([a-z0-9._-]+)((?:/[A-Za-z0-9._-]+)*)")


def spiffe_id(uris: tuple[str, ...]) -> str | None:
    """The certificate's SPIFFE ID: its one URI SAN when that is a valid ``spiffe://`` ID.

    The X.509-SVID specification allows exactly one URI SAN, a lower-case trust domain and
    path segments of ``[A-Za-z0-9._-]`` that are not ``.`` or ``..``; anything else is not an
    SVID and matches no ``spiffe`` rule.
    """
    if len(uris) != 1:
        return None
    match = SPIFFE_ID.fullmatch(uris[0])
    if match is None or any(s in {".", ".."} for s in match[2].split("/")[1:]):
        return None
    return uris[0]


# -- keys and certificates ---------------------------------------------------------------------


def digest_hex(text: str, what: str) -> str:
    """A SHA-256 digest as lower-case hex, from hex (colons allowed) or base64 (curl's
    ``sha256//BASE64`` pin too); raises :class:`RuleError` naming ``what``."""
    value = text.strip()
    if value.startswith("sha256//"):
        value = value[len("sha256//") :]
    hexed = value.replace(":", "").lower()
    if re.fullmatch(r"[0-9a-f]{64}", hexed):
        return hexed
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw.hex()
    raise RuleError(f"{what} {text!r}: expected a SHA-256 digest (64 hex digits or base64)")
