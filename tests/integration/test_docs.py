"""Every shell, console and Python block of the README and docs/ runs as written, in order, in a
fresh folder, and prints what the page shows (tests/docs_runner.py says how)."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs_runner import PAGES, Folder, read_page, run_block, runnable
from tools import need


@pytest.mark.parametrize("page", PAGES)
def test_the_page_runs_as_written(page: str, tmp_path: Path) -> None:
    doc = read_page(page)
    before = read_page(doc.after) if doc.after else None
    for block in [*(before.blocks if before else []), *doc.blocks]:
        if runnable(block):
            need(*block.needs)
    folder = Folder.make(tmp_path / "docs-page")
    try:
        for block in before.blocks if before else []:
            if runnable(block):
                run_block(block, folder, check_output=False)
        folder.stop()  # the page starts its own servers, on the same ports
        for block in doc.blocks:
            if runnable(block):
                run_block(block, folder)
    finally:
        folder.stop()


@pytest.mark.parametrize("page", PAGES)
def test_a_block_not_run_says_why(page: str) -> None:
    for block in read_page(page).blocks:
        if block.lang in ("sh", "console", "python", "") and block.skip is not None:
            assert block.skip.strip(), f"{block.name}: docs-test: skip needs a reason"
        if block.lang == "":
            raise AssertionError(
                f"{block.name}: say what the block is (sh, console, python, text, ...)"
            )
