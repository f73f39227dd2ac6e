"""The article's scenario in real browsers: headless Chromium and Firefox against ``mutls xsp``
and ``mutls serve``, with the root and the client P12s put into their NSS databases by
``mutls certmgr --install-root --nss`` and ``mutls certmgr --install-p12``.

Headless, nobody answers a browser's question of which certificate to send: the drivers in
tests/browsers.py tell Chromium which CN to pick and let Firefox pick by itself.

Both only offer certificates whose issuer is in the server's CA-name list, so the foreign
(``CN=mallory``) cases run against ``--no-ca-names`` servers, and one case proves the list is
honoured. Both leave out certificates outside their validity period (one case proves it), so
the article's "NOT valid" for an expired certificate is curl's and wget's to show, not theirs.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from browsers import CHROMIUM, FIREFOX, chromium, firefox
from helpers import PASSWORD, MutlsServer, PKIFiles
from tools import need

pytestmark = [
    pytest.mark.interop,
    pytest.mark.needs("certutil"),
]


@dataclass(frozen=True)
class Case:
    """One fetch and what the page must say."""

    home: str
    server: str
    select: str | None  # the CN Chromium is told to pick (Firefox picks by itself)
    says: str  # the page's first line
    detail: str | None = None  # also somewhere on the page
    tls12: bool = False


CASES = {
    "plain-http": Case("poupou", "plain", None, "Hello from an insecure session."),
    "https-no-request": Case(
        "poupou", "https", None, "Hello from an secure session. But who are you ?"
    ),
    "require-tls13": Case(
        "poupou",
        "require",
        "poupou",
        "Hello CN=poupou, your certificate is valid",
        "<td>TLSv1.3</td>",
    ),
    "require-tls12": Case(
        "poupou",
        "require",
        "poupou",
        "Hello CN=poupou, your certificate is valid",
        "<td>TLSv1.2</td>",
        tls12=True,
    ),
    # mutls offers h2 first (--http auto): the browser's page came over HTTP/2, same verdict.
    "require-h2": Case(
        "poupou",
        "require",
        "poupou",
        "Hello CN=poupou, your certificate is valid",
        "<th>Protocol (ALPN)</th><td>h2</td>",
    ),
    # The server names only its CA: the browser has nothing to offer, so nothing is sent.
    "ca-names-hide-foreign": Case("mallory", "require", "mallory", "client certificate required"),
    "foreign-report": Case(
        "mallory",
        "require-any-ca",
        "mallory",
        "Hello CN=mallory, your certificate is NOT valid",
        "unable to get local issuer certificate",
    ),
    "foreign-strict": Case(
        "mallory",
        "strict-any-ca",
        "mallory",
        "client certificate not valid: unable to get local issuer certificate",
    ),
    # Browsers never offer a certificate outside its validity period, whatever the CA names.
    "expired-not-offered": Case(
        "expired", "require-any-ca", "expired", "client certificate required"
    ),
}


def page_text(dom: str) -> str:
    """The first line of text in the page's body: the greeting, or a 403's plain-text reason."""
    body = re.split(r"<body[^>]*>", dom, maxsplit=1)[-1]
    text = html.unescape(re.sub(r"<[^>]*>", "\n", body))
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


@pytest.fixture(scope="module")
def servers(test_pki: PKIFiles) -> Iterator[dict[str, str]]:
    """The article's servers, by name; yields each one's test-page URL."""
    p = test_pki
    Arg = str | os.PathLike[str]
    tls: list[Arg] = ["--p12file", p.p12("server"), "--pkpwd", PASSWORD]
    trust: list[Arg] = ["--client-ca", p.ca_cert]
    specs: dict[str, list[Arg]] = {
        "plain": ["xsp"],
        "https": ["xsp", "--https", *tls],
        "require": ["xsp", "--https-client-require", *tls, *trust],
        "require-any-ca": ["xsp", "--https-client-require", "--no-ca-names", *tls, *trust],
        "strict-any-ca": [
            "serve", "--client-cert", "require", "--verify", "strict", "--no-ca-names",
            "--p12", p.p12("server"), "--pkpwd", PASSWORD, *trust,
        ],
    }  # fmt: skip
    with ExitStack() as stack:
        urls = {}
        for name, args in specs.items():
            server = stack.enter_context(MutlsServer(*args, cwd=p.directory))
            scheme = "http" if name == "plain" else "https"
            urls[name] = f"{scheme}://localhost:{server.port}/cctest.aspx"
        yield urls


# -- the cases --------------------------------------------------------------------------------

Fetch = Callable[..., str]


@pytest.fixture(params=["chromium", "firefox"])
def browser(request: pytest.FixtureRequest) -> Fetch:
    """Each installed browser's fetch function (a missing one skips, naming its package)."""
    if request.param == "chromium":
        if CHROMIUM is None:
            need("chromium")
        return chromium
    if FIREFOX is None:
        need("firefox-esr")
    return firefox


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_article_in_a_browser(
    browser: Fetch, case: Case, homes: dict[str, Path], servers: dict[str, str]
) -> None:
    dom = browser(homes[case.home], servers[case.server], case.select, tls12=case.tls12)
    assert page_text(dom) == case.says, dom
    if case.detail is not None:
        assert case.detail in dom
