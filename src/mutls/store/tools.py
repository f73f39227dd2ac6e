"""Running the system's certificate tools (certutil, pk12util, keytool, update-ca-certificates).

A missing tool is an answer, not a traceback: it names the Debian package that provides it.
Each outcome of an install is one :class:`Outcome`, printed as one line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509

from mutls.pki.certs import fingerprint
from mutls.pki.names import common_name
from mutls.store.locations import StoreError

#: tool -> the Debian package that provides it.
PACKAGES = {
    "certutil": "libnss3-tools",
    "pk12util": "libnss3-tools",
    "keytool": "default-jre-headless",
    "update-ca-certificates": "ca-certificates",
}
TOOL_TIMEOUT = 120.0


class ToolMissing(StoreError):
    """A command-line tool that a target needs is not installed."""


class ToolFailed(StoreError):
    """A tool ran and failed; the message is its own last words."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one target: ``nss sql:/home/u/.pki/nssdb: installed``."""

    target: str
    status: str
    detail: str = ""
    ok: bool = True

    def __str__(self) -> str:
        return f"{self.target}: {self.status}" + (f" ({self.detail})" if self.detail else "")


def entry_name(cert: x509.Certificate) -> str:
    """One name for a root everywhere it is installed, so uninstall finds exactly it.

    ``mutls-<cn>-<sha256 prefix>``: readable in a browser's list, unique per certificate, and
    safe as a file name, an NSS nickname and a Java alias (which keytool lower-cases).
    """
    cn = common_name(cert.subject) or "root"
    slug = re.sub(r"[^a-z0-9]+", "-", cn.lower()).strip("-")[:40] or "root"
    return f"mutls-{slug}-{fingerprint(cert)[:16]}"


def find_tool(name: str) -> str:
    """The path of ``name`` on ``PATH``, or :class:`ToolMissing` naming its package."""
    found = shutil.which(name)
    if found is None:
        package = PACKAGES.get(os.path.basename(name))
        hint = f" (install it: apt-get install {package})" if package else ""
        raise ToolMissing(f"{name} not found{hint}")
    return found


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a tool with no terminal input, bounded in time; :class:`ToolFailed` on failure."""
    command = [find_tool(argv[0]), *argv[1:]]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=TOOL_TIMEOUT,
            env={**os.environ, **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolFailed(f"{argv[0]} did not finish within {TOOL_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise ToolFailed(f"{argv[0]}: cannot run: {exc.strerror}") from None
    if check and result.returncode != 0:
        raise ToolFailed(f"{argv[0]} failed: {last_words(result)}")
    return result


def last_words(result: subprocess.CompletedProcess[str]) -> str:
    """The most telling line a failed tool printed."""
    lines = [ln.strip() for ln in (result.stderr + "\n" + result.stdout).splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else f"exit status {result.returncode}"
