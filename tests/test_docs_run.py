"""The docs run: every ```python block of README.md and docs/ is executed (per page, in order, one namespace, in a
temporary folder), and every `rknet ...` command shown (in shell blocks and inline code) is parsed by the real CLI
parser, so a renamed function or a stale option fails here. A block that cannot run on a plain CPU checkout is marked
`<!-- docs-test: skip (reason) -->` on the line before it; the skips are counted and reported."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from rknet.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((.+?)\)\s*-->")
SHELL = {"bash", "sh", "shell", "console"}
COMMAND = re.compile(r"^(?:\$\s+)?(?:\S*torchrun\b.*?-m rknet|\S*python3? -m rknet|(?:\S*/)?rknet)(?=\s|$)")
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


@dataclass
class Block:
    page: Path
    line: int
    language: str
    text: str
    skip: str | None


def _blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with its first line number and its skip reason (if marked)."""
    blocks, lines, start, language, skip, pending = [], page.read_text().splitlines(), None, "", None, None
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line.strip())
        if start is None and fence:
            start, language, skip, pending = number, fence.group(1), pending, None
        elif start is not None and line.strip() == "```":
            blocks.append(Block(page, start + 1, language, "\n".join(lines[start:number - 1]), skip))
            start = None
        elif start is None and line.strip():
            marked = SKIP.search(line)
            pending = marked.group(1) if marked else None
    return blocks


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _shell_commands(text: str) -> list[str]:
    """Joined lines (backslash continuations) of a shell block, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.split(" #")[0].strip() for line in joined.splitlines() if line.strip()]


def _commands(page: Path) -> list[tuple[int, str]]:
    """Every rknet command line shown on a page: (line number, command)."""
    found, in_fence = [], False
    for block in _blocks(page):
        if block.language in SHELL:
            found += [(block.line, command) for command in _shell_commands(block.text) if COMMAND.match(command)]
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line.strip()) or (in_fence and line.strip() == "```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            found += [(number, span) for span in INLINE.findall(line) if COMMAND.match(span)]
    return found


def _argv(command: str) -> list[str]:
    """The arguments after the program (`rknet`, `python -m rknet`, `torchrun ... -m rknet`)."""
    words = shlex.split(command.removeprefix("$ "))
    return words[words.index("rknet") + 1:] if "rknet" in words else words[next(
        i for i, word in enumerate(words) if word.endswith("rknet")) + 1:]


PYTHON_PAGES = [page for page in PAGES if any(block.language == "python" for block in _blocks(page))]
COMMANDS = [(page, number, command) for page in PAGES for number, command in _commands(page)]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_name)
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    skipped = []
    for block in (block for block in _blocks(page) if block.language == "python"):
        if block.skip:
            skipped.append(f"{_name(page)}:{block.line} ({block.skip})")
            continue
        code = compile(block.text, f"{_name(page)}:{block.line}", "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(code, namespace)  # noqa: S102 - the docs' own examples
            except Exception as error:
                pytest.fail(f"{_name(page)}, block at line {block.line}: {type(error).__name__}: {error}")
    if skipped:
        print("skipped docs blocks:", "; ".join(skipped))


@pytest.mark.parametrize(("page", "number", "command"), COMMANDS,
                         ids=[f"{_name(page)}:{number}" for page, number, _ in COMMANDS])
def test_every_rknet_command_shown_parses(page, number, command):
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        try:
            build_parser().parse_args(_argv(command))
        except SystemExit as exit_:
            if exit_.code:
                pytest.fail(f"{_name(page)}:{number}: `{command}` does not parse: {error.getvalue().strip()}")


def test_the_docs_show_code_and_commands():
    """The collector finds what the pages hold (a broken fence pattern would otherwise pass everything)."""
    assert len(PYTHON_PAGES) >= 8 and len(COMMANDS) >= 50
