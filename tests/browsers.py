"""Headless Chromium and Firefox as test drivers: each fetches one URL with a sandboxed HOME
(whose NSS databases ``mutls certmgr`` filled; tests/interop/conftest.py's ``homes``) and
returns the page.

A browser asks the user which client certificate to send. Headless, nobody answers:

- Chromium reads its choice from the profile's ``auto_select_certificate`` content setting (the
  per-profile form of the ``AutoSelectCertificateForUrls`` policy), written into a fresh
  ``--user-data-dir``'s ``Default/Preferences``; nothing outside the sandbox is touched. Without
  it, new headless Chromium waits for an answer forever, so every run is bounded.
- Firefox has ``security.default_personal_cert = "Select Automatically"`` (``user.js``) and is
  driven over Marionette, its built-in remote protocol (a few lines of JSON over TCP here), to
  read the page source.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from helpers import free_port

#: one browser run, start to page; a prompt nobody answers ends here instead of hanging.
RUN_TIMEOUT = 45

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
FIREFOX = next((p for p in map(shutil.which, ("firefox-esr", "firefox")) if p), None)


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
