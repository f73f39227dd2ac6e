"""Install a root where browsers and tools look, and undo exactly that (beyond Mono and mkcert).

Targets:

``system``
    Debian's store: ``/usr/local/share/ca-certificates/<name>.crt`` then
    ``update-ca-certificates`` (``--fresh`` when removing, Debian's way to drop a local CA).
    Overridable: ``MUTLS_SYSTEM_CA_DIR`` and ``MUTLS_UPDATE_CA_CERTIFICATES`` (a command line).
``nss``
    Chromium's ``~/.pki/nssdb`` (created if absent) and Firefox profiles, with ``certutil``;
    or the databases given explicitly.
``java``
    ``keytool -importcert -cacerts`` (the JDK's trust), or a keystore given explicitly
    (``MUTLS_JAVA_KEYSTORE``); store password ``changeit`` unless told otherwise.

Each target gives one :class:`~mutls.store.tools.Outcome`; one failing target does not stop
the others. A tool that is missing fails a target the user named, and skips one they did not.
"""

from __future__ import annotations

import enum
import os
import shlex
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.errors import MutlsError
from mutls.pki.files import PUBLIC, PUBLIC_DIR, make_directories, write_file
from mutls.store import nss
from mutls.store.tools import Outcome, ToolMissing, entry_name, run_tool

SYSTEM_CA_DIR_ENV = "MUTLS_SYSTEM_CA_DIR"
UPDATE_COMMAND_ENV = "MUTLS_UPDATE_CA_CERTIFICATES"
JAVA_KEYSTORE_ENV = "MUTLS_JAVA_KEYSTORE"
DEFAULT_SYSTEM_CA_DIR = Path("/usr/local/share/ca-certificates")
DEFAULT_STOREPASS = "changeit"
_STOREPASS_ENV = "MUTLS_KEYTOOL_STOREPASS"


class Target(enum.Enum):
    """Where a root can be installed."""

    SYSTEM = "system"
    NSS = "nss"
    JAVA = "java"


@dataclass(frozen=True)
class InstallOptions:
    """Which places, exactly: NSS databases, the Java keystore and its password."""

    nss_dbs: Sequence[str | os.PathLike[str]] = field(default=())
    java_keystore: str | os.PathLike[str] | None = None
    java_storepass: str = DEFAULT_STOREPASS


def system_ca_dir() -> Path:
    """Where Debian's update-ca-certificates picks up local CAs."""
    return Path(os.environ.get(SYSTEM_CA_DIR_ENV) or DEFAULT_SYSTEM_CA_DIR)


def update_command() -> list[str]:
    """The update-ca-certificates command line (with its options, when overridden)."""
    return shlex.split(os.environ.get(UPDATE_COMMAND_ENV) or "update-ca-certificates")


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# -- system -------------------------------------------------------------------------------------


def install_system(cert: x509.Certificate) -> Outcome:
    """Place the root in the local CA directory and rebuild the system bundle."""
    path = system_ca_dir() / f"{entry_name(cert)}.crt"
    if path.exists() and path.read_bytes() == _pem(cert):
        return Outcome(f"system {path}", "already installed")
    try:
        make_directories(path.parent, PUBLIC_DIR)  # read by update-ca-certificates and others
    except OSError as exc:
        raise MutlsError(f"{path.parent}: cannot create: {exc.strerror}{_root_hint(exc)}") from exc
    try:
        write_file(path, _pem(cert), mode=PUBLIC, overwrite=True)
    except MutlsError as exc:
        raise MutlsError(f"{exc}{_root_hint(exc.__cause__)}") from exc
    try:
        run_tool([*update_command()])
    except MutlsError:
        path.unlink(missing_ok=True)  # leave the system as it was
        raise
    return Outcome(f"system {path}", "installed")


def uninstall_system(cert: x509.Certificate) -> Outcome:
    """Remove the file :func:`install_system` placed and rebuild the bundle without it."""
    path = system_ca_dir() / f"{entry_name(cert)}.crt"
    if not path.exists():
        return Outcome(f"system {path}", "not installed")
    try:
        path.unlink()
    except OSError as exc:
        raise MutlsError(f"{path}: cannot remove: {exc.strerror}{_root_hint(exc)}") from exc
    # --fresh drops the symlink and rebuilds the bundle from what is left.
    run_tool([*update_command(), "--fresh"])
    return Outcome(f"system {path}", "removed")


def _root_hint(exc: BaseException | None) -> str:
    return " (run as root, e.g. with sudo)" if isinstance(exc, PermissionError) else ""


# -- java ---------------------------------------------------------------------------------------


def _keystore_args(options: InstallOptions) -> tuple[list[str], str]:
    keystore = options.java_keystore or os.environ.get(JAVA_KEYSTORE_ENV)
    if keystore:
        return ["-keystore", str(keystore)], f"java {keystore}"
    return ["-cacerts"], "java -cacerts"


def _keytool(args: list[str], options: InstallOptions, *, check: bool = True) -> int:
    where, _ = _keystore_args(options)
    # The store password travels in the environment, not on argv (visible in ps).
    result = run_tool(
        ["keytool", *args, *where, "-storepass:env", _STOREPASS_ENV],
        env={_STOREPASS_ENV: options.java_storepass},
        check=check,
    )
    return result.returncode


def java_has(cert: x509.Certificate, options: InstallOptions) -> bool:
    """True when the keystore holds the alias :func:`install_java` uses."""
    return _keytool(["-list", "-alias", entry_name(cert)], options, check=False) == 0


def install_java(cert: x509.Certificate, options: InstallOptions) -> Outcome:
    """Import the root as a trusted certificate entry."""
    _, label = _keystore_args(options)
    name = entry_name(cert)
    if java_has(cert, options):
        return Outcome(label, "already installed", f"alias {name!r}")
    with tempfile.TemporaryDirectory(prefix="mutls-") as tmp:
        pem = Path(tmp) / "root.pem"
        pem.write_bytes(_pem(cert))
        _keytool(["-importcert", "-noprompt", "-alias", name, "-file", str(pem)], options)
    return Outcome(label, "installed", f"alias {name!r}")


def uninstall_java(cert: x509.Certificate, options: InstallOptions) -> Outcome:
    """Delete exactly the alias :func:`install_java` made."""
    _, label = _keystore_args(options)
    name = entry_name(cert)
    if not java_has(cert, options):
        return Outcome(label, "not installed", f"no alias {name!r}")
    _keytool(["-delete", "-alias", name], options)
    return Outcome(label, "removed", f"alias {name!r}")


# -- all targets --------------------------------------------------------------------------------

Step = Callable[[], Outcome]


def _steps(
    cert: x509.Certificate, targets: Sequence[Target], options: InstallOptions, install: bool
) -> list[tuple[str, Step]]:
    steps: list[tuple[str, Step]] = []
    for target in targets:
        if target is Target.SYSTEM:
            step = install_system if install else uninstall_system
            steps.append(("system", partial(step, cert)))
        elif target is Target.NSS:
            dbs = nss.resolve_dbs(options.nss_dbs, create=install)
            if not dbs:
                steps.append(("nss", lambda: Outcome("nss", "not installed", "no NSS database")))
            nss_step = nss.install_root if install else nss.uninstall_root
            for db in dbs:
                steps.append((f"nss sql:{db}", partial(nss_step, cert, db)))
        else:
            java_step = install_java if install else uninstall_java
            steps.append((_keystore_args(options)[1], partial(java_step, cert, options)))
    return steps


def change_root(
    cert: x509.Certificate,
    targets: Sequence[Target] = (),
    options: InstallOptions | None = None,
    *,
    install: bool = True,
) -> list[Outcome]:
    """Install (or uninstall) ``cert`` into ``targets`` (all of them when none are named)."""
    explicit = bool(targets)
    chosen = list(targets) or list(Target)
    outcomes: list[Outcome] = []
    for label, step in _steps(cert, chosen, options or InstallOptions(), install):
        try:
            outcomes.append(step())
        except ToolMissing as exc:
            status = "failed" if explicit else "skipped"
            outcomes.append(Outcome(label, status, str(exc), ok=not explicit))
        except MutlsError as exc:
            outcomes.append(Outcome(label, "failed", str(exc), ok=False))
    return outcomes


def import_p12_into_nss(
    p12: Path, password: str, nss_dbs: Sequence[str | os.PathLike[str]] = ()
) -> list[Outcome]:
    """Import a client P12 into NSS databases (Chromium's, created if absent, and Firefox's)."""
    outcomes: list[Outcome] = []
    for db in nss.resolve_dbs(nss_dbs, create=True):
        try:
            outcomes.append(nss.import_p12(p12, password, db))
        except MutlsError as exc:
            outcomes.append(Outcome(f"nss sql:{db}", "failed", str(exc), ok=False))
    return outcomes
