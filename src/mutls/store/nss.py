"""NSS databases (Chromium's ``~/.pki/nssdb``, Firefox profiles): trust a root, import a P12.

Browsers on Linux do not read the system store for client certificates, and Firefox not even
for roots: they read NSS databases, changed with ``certutil`` and ``pk12util``
(Debian package ``libnss3-tools``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mutls.pki.files import PRIVATE, make_directories, write_file
from mutls.store.locations import StoreError
from mutls.store.tools import Outcome, entry_name, run_tool

#: certutil trust flags: a CA trusted to issue TLS (server and client) certificates.
ROOT_TRUST = "C,,"


def chromium_db() -> Path:
    """Chromium's (and Chrome's) shared NSS database."""
    return Path.home() / ".pki" / "nssdb"


def firefox_dbs() -> list[Path]:
    """Firefox profiles with a modern (``cert9.db``) database, deb and snap installs."""
    homes = [
        Path.home() / ".mozilla" / "firefox",
        Path.home() / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
    ]
    return sorted(p.parent for home in homes for p in home.glob("*/cert9.db"))


def discover_dbs(*, create: bool) -> list[Path]:
    """Every NSS database of this user; Chromium's is created when ``create`` (as mkcert does)."""
    dbs = [chromium_db()] if create or (chromium_db() / "cert9.db").exists() else []
    return dbs + [db for db in firefox_dbs() if db not in dbs]


def _spec(db: Path) -> str:
    return f"sql:{db}"


def ensure_db(db: Path) -> None:
    """Create an empty-password NSS database in ``db`` when there is none."""
    if (db / "cert9.db").exists():
        return
    try:
        make_directories(db)
    except OSError as exc:
        raise StoreError(f"{db}: cannot create the NSS database: {exc.strerror}") from exc
    run_tool(["certutil", "-N", "-d", _spec(db), "--empty-password"])


def has_nickname(db: Path, nickname: str) -> bool:
    """True when ``db`` holds a certificate called ``nickname``."""
    return (
        run_tool(["certutil", "-L", "-d", _spec(db), "-n", nickname], check=False).returncode == 0
    )


def install_root(cert: x509.Certificate, db: Path) -> Outcome:
    """Trust ``cert`` as a root in ``db``."""
    name = entry_name(cert)
    ensure_db(db)
    if has_nickname(db, name):
        return Outcome(f"nss {_spec(db)}", "already installed", f"as {name!r}")
    with tempfile.TemporaryDirectory(prefix="mutls-") as tmp:
        pem = Path(tmp) / "root.pem"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        run_tool(["certutil", "-A", "-t", ROOT_TRUST, "-n", name, "-d", _spec(db), "-i", str(pem)])
    return Outcome(f"nss {_spec(db)}", "installed", f"as {name!r}")


def uninstall_root(cert: x509.Certificate, db: Path) -> Outcome:
    """Remove exactly the entry :func:`install_root` made."""
    name = entry_name(cert)
    if not (db / "cert9.db").exists() or not has_nickname(db, name):
        return Outcome(f"nss {_spec(db)}", "not installed", f"no {name!r}")
    run_tool(["certutil", "-D", "-n", name, "-d", _spec(db)])
    return Outcome(f"nss {_spec(db)}", "removed", f"{name!r}")


def import_p12(p12: Path, password: str, db: Path) -> Outcome:
    """Import a client identity (certificate and key) into ``db``, for a browser to present."""
    ensure_db(db)
    with tempfile.TemporaryDirectory(prefix="mutls-") as tmp:
        # A password file (0600, deleted after) keeps the secret out of ``ps``.
        secret = write_file(Path(tmp) / "p12.pass", password.encode(), mode=PRIVATE)
        run_tool(["pk12util", "-i", str(p12), "-d", _spec(db), "-w", str(secret)])
    return Outcome(f"nss {_spec(db)}", "imported", os.path.basename(p12))


def resolve_dbs(explicit: Sequence[str | os.PathLike[str]], *, create: bool) -> list[Path]:
    """The databases named on the command line (``--nssdb``), or this user's."""
    if explicit:
        return [Path(str(db).removeprefix("sql:")) for db in explicit]
    return discover_dbs(create=create)
