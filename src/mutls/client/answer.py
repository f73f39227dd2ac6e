"""What a server's answer says about the client certificate, and which server gave it.

A server that leaves the verdict to the application (XSP and ``mutls xsp --https-client-*``,
``mutls serve --verify report``, nginx ``optional_no_ca``, ``openssl s_server`` without
``-verify_return_error``) answers 200 and says in the page whether the certificate is valid; a
strict mutls answers 403 with the reason. ``mutls doctor`` reads both, so that its verdict never
contradicts the page it quotes ("accepted" above "your certificate is NOT valid").
"""

from __future__ import annotations

import enum
import html
import re
from dataclasses import dataclass

from mutls.client.http import Response

#: mutls's strict 403 (mutls.tls.policy): "client certificate not valid: <reason>".
_REFUSED = re.compile(r"client certificate not valid: ([^\n]+)")
#: mod_ssl's and nginx's variable, rendered by an app: SUCCESS, NONE or FAILED:<reason>.
_VERIFY = re.compile(r"SSL_CLIENT_VERIFY\W*(SUCCESS|NONE|FAILED)(?::\s*([^\n]*))?")
#: the article's test page (mutls xsp, XSP).
_NOT_VALID = re.compile(r"your certificate is NOT valid")
_VALID = re.compile(r"your certificate is valid")
_PAGE_ERROR = re.compile(r"Verification error\s*([^\n]+)")
#: `openssl s_server -www`: the session's verify result.
_S_SERVER = re.compile(r"Verify return code: (\d+) \(([^)\n]*)\)")


@dataclass(frozen=True)
class PageVerdict:
    """What the answer says: valid or not, the reason given, and where it was read."""

    valid: bool
    reason: str | None
    source: str


class ServerKind(enum.Enum):
    """Who answered, as far as the answer tells: it decides which fix to show."""

    MUTLS = "mutls"
    NGINX = "nginx"
    S_SERVER = "openssl s_server"
    UNKNOWN = "unknown"


def page_verdict(response: Response | None) -> PageVerdict | None:
    """The certificate verdict the answer states, or ``None`` when it states none."""
    if response is None:
        return None
    for name, value in response.headers:
        if "verify" in name.lower() and (found := _VERIFY.match(f"SSL_CLIENT_VERIFY {value}")):
            return _from_verify(found, f"header {name}")
    text = page_text(response)
    if found := _REFUSED.search(text):
        return PageVerdict(False, found.group(1).strip(), f"HTTP {response.status} body")
    if found := _VERIFY.search(text):
        return _from_verify(found, "SSL_CLIENT_VERIFY in the page")
    if _NOT_VALID.search(text):
        error = _PAGE_ERROR.search(text)
        return PageVerdict(False, error.group(1).strip() if error else None, "the page")
    if _VALID.search(text):
        return PageVerdict(True, None, "the page")
    if (found := _S_SERVER.search(text)) and found.group(1) != "0":
        return PageVerdict(False, found.group(2), "s_server's Verify return code")
    return None


def _from_verify(found: re.Match[str], source: str) -> PageVerdict | None:
    status, reason = found.group(1), found.group(2)
    if status == "NONE":
        return None
    return PageVerdict(status == "SUCCESS", (reason or "").strip() or None, source)


def page_text(response: Response) -> str:
    """The body as text: tags out (each ends a cell), entities decoded."""
    body = response.body.decode("utf-8", "replace")
    return html.unescape(re.sub(r"<[^>]*>", " ", body))


def server_kind(response: Response | None) -> ServerKind:
    """mutls and nginx name themselves in ``Server``; s_server's ``-www`` page starts so."""
    if response is None:
        return ServerKind.UNKNOWN
    server = next((v.lower() for n, v in response.headers if n.lower() == "server"), "")
    if server.startswith("mutls"):
        return ServerKind.MUTLS
    if server.startswith("nginx"):
        return ServerKind.NGINX
    if b"\ns_server " in response.body[:400]:
        return ServerKind.S_SERVER
    return ServerKind.UNKNOWN
