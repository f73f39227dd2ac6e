"""``--reload-on-change``'s watcher: a change is reported once, after it has settled."""

from __future__ import annotations

import os
from pathlib import Path

from mutls.server.watch import FileWatcher


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watcher(paths: list[Path], clock: Clock) -> FileWatcher:
    return FileWatcher([str(p) for p in paths], settle=1.0, clock=clock)


def test_a_rename_over_the_file_is_seen_once_after_settling(tmp_path: Path) -> None:
    path, clock = tmp_path / "cert.pem", Clock()
    path.write_text("one")
    watch = watcher([path], clock)
    assert not watch.poll()
    (tmp_path / "new").write_text("two")
    os.replace(tmp_path / "new", path)
    assert not watch.poll()  # just changed: maybe half written
    clock.now = 0.5
    assert not watch.poll()
    clock.now = 1.0
    assert watch.poll()
    clock.now = 5.0
    assert not watch.poll()  # once


def test_a_rewrite_in_place_and_a_write_in_two_steps(tmp_path: Path) -> None:
    path, clock = tmp_path / "key.pem", Clock()
    path.write_text("first")
    watch = watcher([path], clock)
    with path.open("w") as handle:
        handle.write("sec")
    assert not watch.poll()
    clock.now = 0.6
    with path.open("a") as handle:  # still being written: the clock starts again
        handle.write("ond!")
    assert not watch.poll()
    clock.now = 1.2
    assert not watch.poll()
    clock.now = 1.6
    assert watch.poll()


def test_a_store_folder_and_a_missing_file(tmp_path: Path) -> None:
    store, missing, clock = tmp_path / "Trust", tmp_path / "crl.pem", Clock()
    watch = watcher([store, missing], clock)
    (store / "crl").mkdir(parents=True)
    (store / "crl" / "x.pem").write_text("crl")
    missing.write_text("now here")
    assert not watch.poll()
    clock.now = 2.0
    assert watch.poll()
    (store / "crl" / "x.pem").unlink()
    assert not watch.poll()
    clock.now = 4.0
    assert watch.poll()
