"""The article's scenario in real browsers: headless Chromium and Firefox against ``mutls xsp``
and ``mutls serve``, with the root and the client P12s put into their NSS databases by
``mutls certmgr --install-root --nss`` and ``mutls certmgr --install-p12``.

A browser asks the user which client certificate to send. Headless, nobody answers:

- Chromium reads its choice from the profile's ``auto_select_certificate`` content setting (the
  per-profile form of the ``AutoSelectCertificateForUrls`` policy), written into a fresh
  ``--user-data-dir``'s ``Default/Preferences``; nothing outside the sandbox is touched. Without
  it, new headless Chromium waits for an answer forever, so every run is bounded.
- Firefox has ``security.default_personal_cert = "Select Automatically"`` (``user.js``) and is
  driven over Marionette, its built-in remote protocol (a few lines of JSON over TCP here), to
  read the page source.

Both only offer certificates whose issuer is in the server's CA-name list, so the foreign
(``CN=mallory``) cases run against ``--no-ca-names`` servers, and one case proves the list is
honoured. Both leave out certificates outside their validity period (one case proves it), so
the article's "NOT valid" for an expired certificate is curl's and wget's to show, not theirs.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import PASSWORD, MutlsServer, PKIFiles, free_port, run_mutls
from tools import need

#: one browser run, start to page; a prompt nobody answers ends here instead of hanging.
RUN_TIMEOUT = 45

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
FIREFOX = next((p for p in map(shutil.which, ("firefox-esr", "firefox")) if p), None)

pytestmark = [
    pytest.mark.interop,
    pytest.mark.needs("certutil"),
]

#: the sandboxed HOMEs: which client P12s each one's NSS databases hold.
HOMES = {
    "poupou": ["poupou"],  # the article's user, issued by the trusted CA
    "mallory": ["untrusted"],  # CN=mallory, issued by another CA
    "expired": ["expired"],  # CN=expired, issued by the trusted CA, expired yesterday
}


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


def sandbox_env(home: Path) -> dict[str, str]:
    """Environment for a tool or browser whose HOME is ``home`` (nothing of the real user's)."""
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }


def stop_group(process: subprocess.Popen[Any]) -> None:
    """Kill the browser and every helper it started (its own session, see start_new_session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def homes(test_pki: PKIFiles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HOMEs whose Chromium and Firefox NSS databases were filled by mutls certmgr alone."""
    made = {}
    for name, identities in HOMES.items():
        home = tmp_path_factory.mktemp(f"home-{name}")
        # A Firefox profile as Firefox leaves it; certmgr finds it the way it finds a user's.
        profile = home / ".mozilla" / "firefox" / "mutls.default"
        profile.mkdir(parents=True)
        subprocess.run(
            ["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True, timeout=60
        )
        env = sandbox_env(home)
        result = run_mutls("certmgr", "--install-root", test_pki.ca_cert, "--nss", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(": installed") == 2, result.stdout  # Chromium's and Firefox's
        for identity in identities:
            p12 = test_pki.p12(identity)
            result = run_mutls("certmgr", "--install-p12", p12, "-p", PASSWORD, env=env)
            assert result.returncode == 0, result.stderr
            assert result.stdout.count(": imported") == 2, result.stdout
        made[name] = home
    return made


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


# -- Chromium ---------------------------------------------------------------------------------


def chromium(home: Path, url: str, select: str | None, *, tls12: bool = False) -> str:
    """The DOM Chromium renders for ``url``, sending the certificate whose CN is ``select``."""
    assert CHROMIUM is not None
    profile = home / f"chromium-{uuid.uuid4().hex}"
    if select is not None:
        # Preferences is where a profile keeps content settings; this one is what the
        # AutoSelectCertificateForUrls policy sets, but for this profile only.
        setting = {"filters": [{"SUBJECT": {"CN": select}}]}
        exceptions = {"auto_select_certificate": {f"{origin(url)},*": {"setting": setting}}}
        preferences = {"profile": {"content_settings": {"exceptions": exceptions}}}
        (profile / "Default").mkdir(parents=True)
        (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",  # as root it refuses to start without; a test needs no renderer sandbox
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *(["--ssl-version-max=tls1.2"] if tls12 else []),
        "--dump-dom",
        url,
    ]
    process = subprocess.Popen(
        argv,
        env=sandbox_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium gave no page for {url} in {RUN_TIMEOUT} s (a certificate prompt?)")
    finally:
        stop_group(process)
    assert process.returncode == 0, err[-2000:]
    return out


def origin(url: str) -> str:
    """``https://localhost:4433`` of ``https://localhost:4433/cctest.aspx``."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


# -- Firefox ----------------------------------------------------------------------------------


class Marionette:
    """Just enough of Firefox's Marionette protocol (``length:json``) to load a page."""

    def __init__(self, port: int, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=RUN_TIMEOUT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Firefox's Marionette did not listen on {port} in time")
                time.sleep(0.1)
        self.stream = self.sock.makefile("rb")
        self.next_id = 0
        self.receive()  # the greeting: {"applicationType": "gecko", ...}

    def receive(self) -> Any:
        size = b""
        while (byte := self.stream.read(1)) != b":":
            if not byte:
                raise ConnectionError("Marionette closed the connection")
            size += byte
        return json.loads(self.stream.read(int(size)))

    def command(self, name: str, params: dict[str, Any]) -> Any:
        """Send one command; its result, or the error as ``{"error": ...}``."""
        self.next_id += 1
        data = json.dumps([0, self.next_id, name, params]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        _kind, _id, error, result = self.receive()
        return {"error": error} if error else result

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def firefox(home: Path, url: str, select: str | None, *, tls12: bool = False) -> str:
    """The page source Firefox shows for ``url``; it picks the client certificate itself."""
    del select  # "Select Automatically": among what the server's CA names allow
    assert FIREFOX is not None
    prepared = home / ".mozilla" / "firefox" / "mutls.default"
    profile = home / f"firefox-{uuid.uuid4().hex}"
    shutil.copytree(prepared, profile)  # a fresh copy each run: no state carried over
    port = free_port()
    prefs = {
        "marionette.port": port,
        "security.default_personal_cert": "Select Automatically",
        "security.tls.version.max": 3 if tls12 else 4,
        "network.http.http3.enable": False,
        "browser.shell.checkDefaultBrowser": False,
        "app.update.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
        "toolkit.telemetry.reportingpolicy.firstRun": False,
    }
    lines = (f"user_pref({json.dumps(k)}, {json.dumps(v)});" for k, v in prefs.items())
    (profile / "user.js").write_text("\n".join(lines) + "\n")
    argv = [FIREFOX, "--headless", "--marionette", "--no-remote", "--profile", str(profile)]
    process = subprocess.Popen(
        [*argv, "about:blank"],
        env={**sandbox_env(home), "MOZ_HEADLESS": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        marionette = Marionette(port, time.monotonic() + RUN_TIMEOUT)
        try:
            timeouts = {"pageLoad": 20_000, "script": 10_000, "implicit": 0}
            session = marionette.command(
                "WebDriver:NewSession", {"capabilities": {"alwaysMatch": {"timeouts": timeouts}}}
            )
            assert "error" not in session, session
            loaded = marionette.command("WebDriver:Navigate", {"url": url})
            assert "error" not in loaded, f"Firefox could not load {url}: {loaded}"
            source = marionette.command("WebDriver:GetPageSource", {})
            assert "error" not in source, source
            return str(source["value"])
        finally:
            marionette.close()
    finally:
        stop_group(process)


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
