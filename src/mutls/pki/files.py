"""Writing files safely: atomically, never clobbering by accident, keys readable by the owner,
directories with the mode mutls chose whatever the umask."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from mutls.errors import PKIError

PRIVATE = 0o600
PUBLIC = 0o644
#: every directory mutls makes for one user (stores, NSS databases, the demo's folder).
PRIVATE_DIR = 0o700
#: a machine-wide directory of certificates that every user's server must read.
PUBLIC_DIR = 0o755


def make_directories(path: str | os.PathLike[str], mode: int = PRIVATE_DIR) -> Path:
    """Create ``path`` and each missing parent with exactly ``mode``, whatever the umask.

    ``mkdir(mode)`` is masked by the umask, so under ``umask 000`` a plain ``mkdir -p`` made
    ``~/.config/mutls/certs`` world-writable: another user could replace ``Trust/``. Each
    directory this call creates is made with ``mode`` (the umask can only narrow it, never
    widen it) and then set to ``mode``; directories that existed are left as they are. Raises
    ``OSError``; a path that exists and is not a directory raises ``FileExistsError``.
    """
    target = Path(path)
    missing: list[Path] = []
    current = target
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            if directory.is_dir():
                continue  # made meanwhile by someone else: theirs, not ours to change
            raise
        os.chmod(directory, mode)
    return target


def write_file(
    path: str | os.PathLike[str], data: bytes, *, mode: int = PUBLIC, overwrite: bool = False
) -> Path:
    """Write ``data`` to ``path`` atomically with ``mode``.

    The bytes go to a temporary file in the same directory, created with ``mode`` from the start
    (a key is never world-readable, not even for an instant), flushed to disk, then moved into
    place. Without ``overwrite`` an existing file is an error, decided atomically by ``link``.
    A crash leaves either the old file or the new one, never a partial one.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise PKIError(f"{target}: cannot write: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise PKIError(
                    f"{target}: already exists (remove it or pass --force to overwrite)"
                ) from None
            os.unlink(tmp)
    except OSError as exc:
        raise PKIError(f"{target}: cannot write: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return target


def read_file(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read a whole input file, turning OS errors into one clear line."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise PKIError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise PKIError(f"{path}: is a directory, expected a {what}") from None
    except OSError as exc:
        raise PKIError(f"{path}: cannot read {what}: {exc.strerror}") from exc


def write_files(
    outputs: Sequence[tuple[str | os.PathLike[str], bytes, int]], *, overwrite: bool = False
) -> list[Path]:
    """Write several files as one step: all of them, or none of the new ones.

    ``outputs`` holds ``(path, data, mode)``. Without ``overwrite``, every path is checked first,
    so an existing file is reported before anything is written; if a later write fails, the files
    this call already created are removed again, leaving no half-made set (a key without its
    certificate) behind.
    """
    if not overwrite:
        for path, _data, _mode in outputs:
            if Path(path).exists():
                raise PKIError(f"{path}: already exists (remove it or pass --force to overwrite)")
    written: list[Path] = []
    try:
        for path, data, mode in outputs:
            existed = Path(path).exists()
            target = write_file(path, data, mode=mode, overwrite=overwrite)
            if not existed:
                written.append(target)
    except BaseException:
        for target in written:
            with contextlib.suppress(OSError):
                target.unlink()
        raise
    return written
