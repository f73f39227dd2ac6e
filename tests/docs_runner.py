"""Run the README's and docs/'s examples as written, so the docs cannot drift from mutls.

The blocks of a page run in order, in a fresh folder (HOME and XDG_CONFIG_HOME inside it, so a
``certmgr -add`` stays there, and Mono's own files as ``mono/``):

- ``sh``: every command must succeed (``export NAME=VALUE`` holds for the page's later
  commands). A command ending in ``&`` is a server: it runs in the
  background until the page is done, and the next command waits for its ``--port`` (no sleep).
  ``# -> TEXT`` lines after a command are output it must print (each a line of it).
- ``console``: ``% COMMAND`` lines (the article's prompt; ``$`` is left to the output, which
  may quote commands), each followed by exactly the output it must print.
- ``python``: run with this interpreter; it must not raise.
- anything else (``text``, ``nginx``, ``json``) is not a program and is not run.

Output is compared after normalising what differs from run to run: ports, the folder, serials,
fingerprints, dates, times and durations. An HTML comment before a block says what the runner
must know: ``<!-- docs-test: skip WHY -->`` (a terminal, a browser, root, the whole test suite),
``<!-- docs-test: needs PROGRAM... -->`` (skipped, naming the package, when not installed), and
at the top of a page ``<!-- docs-test: after PAGE -->`` (its examples continue PAGE's: PAGE's
commands run first in the same folder, and its servers are stopped before the page's own).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from helpers import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
MONO_FILES = Path(__file__).resolve().parent / "fixtures" / "mono"
#: the ports the docs use for servers (4433, and 4434… for a second one); each run takes free
#: ones instead.
DOC_PORTS = re.compile(r"\b443[3-9]\b")
_FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[\w-]*)\s*$")
_MARK = re.compile(r"<!-- docs-test: (?P<what>skip|needs|after) ?(?P<arg>.*?) -->")


@dataclass
class Block:
    """One fenced block and what its page's comments say about it."""

    page: str
    line: int
    lang: str
    text: str
    skip: str | None = None
    needs: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    """A page's blocks and the page its examples continue."""

    path: str
    blocks: list[Block]
    after: str | None = None


def read_page(path: str) -> Page:
    """The fenced blocks of ``path`` (relative to the repository) with their marks."""
    lines = (ROOT / path).read_text().splitlines()
    page = Page(path, [])
    pending: dict[str, str] = {}
    i = 0
    while i < len(lines):
        if mark := _MARK.search(lines[i]):
            if mark["what"] == "after":
                page.after = mark["arg"]
            else:
                pending[mark["what"]] = mark["arg"]
        fence = _FENCE.match(lines[i])
        if fence is None:
            i += 1
            continue
        indent, start = len(fence["indent"]), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:])
            i += 1
        page.blocks.append(
            Block(
                path,
                start + 1,
                fence["lang"],
                "\n".join(body) + "\n",
                skip=pending.get("skip"),
                needs=tuple(pending.get("needs", "").split()),
            )
        )
        pending = {}
        i += 1
    return page


# -- normalising what differs between runs -------------------------------------------------------

_NORMAL = [
    (re.compile(r"/tmp/[\w./-]*?(mutls-demo-\w+|docs-\w+)"), "FOLDER"),
    (re.compile(r"(?<=[:\s])\d{4,5}(?=[/\s)]|$)"), "PORT"),
    (re.compile(r"\b\d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?( UTC)?)?"), "DATE"),
    (re.compile(r"\b[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){15,}\b"), "FINGERPRINT"),
    (re.compile(r"\b[0-9A-Fa-f]{16,}\b"), "HEX"),
    (re.compile(r"\(\d+(\.\d+)? s\)"), "(TIME)"),
    (re.compile(r"\b\d+ days? (left|ago)"), "DAYS"),
]


def normalise(text: str) -> str:
    """``text`` with ports, folders, serials, fingerprints, dates and times replaced."""
    for pattern, replacement in _NORMAL:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


# -- running -------------------------------------------------------------------------------------


@dataclass
class Folder:
    """The fresh folder a page runs in, its environment, and the servers it started."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[str, str] = field(default_factory=dict)
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def make(cls, path: Path) -> Folder:
        shutil.copytree(MONO_FILES, path / "mono")
        bin_dir = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            "HOME": str(path),
            "XDG_CONFIG_HOME": str(path / ".config"),
            "MUTLS_MACHINE_STORE": str(path / "machine-store"),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        }
        return cls(path, env)

    def command(self, text: str) -> str:
        def port(match: re.Match[str]) -> str:
            return self.ports.setdefault(match.group(0), str(free_port()))

        return DOC_PORTS.sub(port, text)

    def run(self, text: str) -> subprocess.CompletedProcess[str]:
        """A foreground command, in bash, with stdin closed."""
        return subprocess.run(
            ["bash", "-c", self.command(text)],
            cwd=self.path,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, text: str) -> None:
        """A server (``COMMAND &``): started in its own process group, waited for by port."""
        command = self.command(text.rstrip().removesuffix("&"))
        self.servers.append(
            subprocess.Popen(
                ["bash", "-c", f"exec {command}"],
                cwd=self.path,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        # mutls's --port, or the -l HOST:PORT of systemd-socket-activate (which listens at once)
        port = re.search(r"--port (\d+)", command) or re.search(r"\s-l \S*:(\d+)", command)
        if port is not None:
            wait_for_port(int(port.group(1)), timeout=30)

    def stop(self) -> None:
        for process in self.servers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)
        self.servers.clear()


def commands(text: str) -> list[tuple[str, list[str]]]:
    """An ``sh`` block's commands (continuations and here-documents joined) with the ``# ->``
    lines after each."""
    out: list[tuple[str, list[str]]] = []
    current = ""
    heredoc: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if heredoc is not None:
            out[-1] = (out[-1][0] + "\n" + raw, [])
            if line == heredoc:
                heredoc = None
            continue
        if (here := re.search(r"<<-?'?(\w+)'?", line)) and not line.startswith("#"):
            out.append((line, []))
            heredoc = here.group(1)
            continue
        if current:
            current += " " + line.removesuffix("\\").strip()
            if not line.endswith("\\"):
                out.append((current, []))
                current = ""
            continue
        if line.startswith("#"):
            said = re.match(r"#\s*->\s?(.*)", line)
            if said and out:
                out[-1][1].append(said.group(1))
            continue
        if not line:
            continue
        if line.endswith("\\"):
            current = line.removesuffix("\\").strip()
        else:
            out.append((line, []))
    return out


def console(text: str) -> list[tuple[str, str]]:
    """A ``console`` block's ``% COMMAND`` lines, each with the output shown after it."""
    out: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("% "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in out]


def run_block(block: Block, folder: Folder, check_output: bool = True) -> None:
    """Run one block in ``folder``; raise AssertionError naming the block and the command."""
    if block.lang == "sh":
        for command, said in commands(block.text):
            if command.endswith("&"):
                folder.start(command)
                continue
            if export := re.fullmatch(r"export (\w+)=(\S+)", command):
                folder.env[export.group(1)] = shlex.split(export.group(2))[0]
                continue
            done = folder.run(command)
            where = f"{block.name}: `{command}`"
            assert done.returncode == 0, f"{where} exited {done.returncode}:\n{done.stderr}"
            if check_output:
                printed = normalise(done.stdout + done.stderr).splitlines()
                for line in said:
                    assert normalise(line) in printed, f"{where} did not print {line!r}:\n" + (
                        done.stdout + done.stderr
                    )
    elif block.lang == "console":
        for command, shown in console(block.text):
            done = folder.run(command)
            if check_output:
                got = normalise(done.stdout + done.stderr)
                assert got == normalise(shown), (
                    f"{block.name}: `{command}` printed\n{done.stdout + done.stderr}\n"
                    f"--- normalised, it differs from what the page shows ---\n{got}\n---\n"
                    f"{normalise(shown)}"
                )
    elif block.lang == "python":
        done = folder.run(f"{shlex.quote(sys.executable)} - <<'PYTHON'\n{block.text}PYTHON")
        assert done.returncode == 0, f"{block.name}: the Python block failed:\n{done.stderr}"


def runnable(block: Block) -> bool:
    """Is the block a program (and not marked skip)?"""
    return block.lang in ("sh", "console", "python") and block.skip is None


PAGES = ["README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))]
