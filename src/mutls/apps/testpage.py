"""The article's test page (``cctest.aspx``): who the client is, and whether to believe it.

Four sentences, exactly as the article's page printed them, then a table of the certificate's
details and the verification error. Everything taken from a certificate is chosen by whoever
made it, so all of it is HTML-escaped.
"""

from __future__ import annotations

import html

from mutls.apps.base import ResponseChannel, send_text
from mutls.apps.facts import ConnectionFacts
from mutls.apps.static import StaticFiles
from mutls.http.events import Request
from mutls.tls.client_certificate import ClientCertificate

INSECURE = "Hello from an insecure session."
ANONYMOUS = "Hello from an secure session. But who are you ?"
PATHS = ("/", "/cctest.aspx")


def greeting(facts: ConnectionFacts) -> str:
    """The article's sentence for this connection."""
    cert = facts.client_certificate
    # Behind a proxy (no TLS here) only a forwarded certificate shows the client used TLS.
    if cert is None or (facts.tls is None and not cert.present):
        return INSECURE
    if not cert.present:
        return ANONYMOUS
    verdict = "valid" if cert.valid else "NOT valid"
    return f"Hello {cert.subject}, your certificate is {verdict}"


def detail_rows(facts: ConnectionFacts) -> list[tuple[str, str]]:
    """The rows of the details table (unescaped)."""
    tls = facts.tls
    rows = []
    if tls is not None:
        rows += [
            ("TLS version", tls.version),
            ("Cipher", tls.cipher),
            ("Protocol (ALPN)", tls.alpn or "none"),
            ("Session", "resumed" if tls.resumed else "new"),
        ]
    cert: ClientCertificate | None = facts.client_certificate
    if cert is None:
        return rows
    rows.append(("SSL_CLIENT_VERIFY", cert.verify_status))
    if not cert.present:
        return rows
    rows += [
        ("Subject", cert.subject or ""),
        ("Issuer", cert.issuer or ""),
        ("Serial", cert.serial or ""),
        ("Not before", str(cert.not_before)),
        ("Not after", str(cert.not_after)),
        ("Days remaining", str(cert.days_remaining())),
        ("SHA-256", cert.fingerprint_sha256 or ""),
    ]
    san = cert.san
    names = [*san.dns, *san.email, *san.uri, *san.ip]
    if names:
        rows.append(("Alternative names", ", ".join(names)))
    rows.append(("Chain sent", str(len(cert.chain))))
    rows.append(("Verification error", cert.error or "none"))
    if cert.error_depth is not None:
        rows.append(("Error depth", str(cert.error_depth)))
    return rows


def render(facts: ConnectionFacts) -> str:
    """The whole page, HTML-escaped."""
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in detail_rows(facts)
    )
    table = f"<table>\n{rows}\n</table>\n" if rows else ""
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>cctest</title></head>\n'
        f"<body>\n<p>{html.escape(greeting(facts))}</p>\n{table}</body></html>\n"
    )


class TestPageApp:
    """The server's app when none is given: the test page at ``/`` and ``/cctest.aspx``, and
    static files from ``root`` (only when one is given)."""

    __test__ = False  # not a pytest class

    def __init__(self, static: StaticFiles | None = None) -> None:
        self.static = static

    async def startup(self) -> None:
        """Nothing to prepare."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def handle(
        self, request: Request, body: bytes, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        """The page, a static file, or 404."""
        if request.path in PATHS:
            await self._page(request, facts, channel)
        elif self.static is not None:
            await self.static.handle(request, body, facts, channel)
        else:
            await send_text(channel, 404, "not found")

    async def _page(
        self, request: Request, facts: ConnectionFacts, channel: ResponseChannel
    ) -> None:
        from mutls.apps.base import send_text

        if request.method not in ("GET", "HEAD", "POST"):
            await send_text(channel, 405, "method not allowed")
            return
        page = render(facts).encode("utf-8")
        await channel.start(
            200,
            [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(page)).encode("ascii")),
                (b"cache-control", b"no-store"),
            ],
        )
        await channel.send(page)
        await channel.finish()
