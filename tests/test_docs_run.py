"""The docs run: every ```python block of README.md, BENCHMARKS.md (a page of the site) and docs/ is executed
(per page, in order, one namespace, in a temporary folder), and every `rknet ...` command shown (in shell blocks
and inline code) is parsed by the real CLI parser, so a renamed function or a stale option fails here. A block
that cannot run on a plain CPU checkout is marked `<!-- docs-test: skip (reason) -->` on the line before it; the
skips are counted and reported. Every page's blocks may assume `import torch` and `import rknet`, as the docs do."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import rknet
from rknet.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]
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
    """The commands of a shell block: backslash continuations joined, comments dropped, `a && b` and `a; b` split."""
    joined = re.sub(r"\\\n\s*", " ", text)
    lines = [line.split(" #")[0] for line in joined.splitlines()]
    return [part.strip() for line in lines for part in re.split(r"&&|;", line) if part.strip()]


def _commands(page: Path) -> list[tuple[int, str, bool]]:
    """Every rknet command shown on a page: (line number, command, whether inline)."""
    found, in_fence = [], False
    for block in _blocks(page):
        if block.language in SHELL:
            found += [(block.line, command, False) for command in _shell_commands(block.text)
                      if COMMAND.match(command)]
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line.strip()) or (in_fence and line.strip() == "```"):
            in_fence = not in_fence
            continue
        if not in_fence:
            found += [(number, span, True) for span in INLINE.findall(line) if COMMAND.match(span)]
    return found


def _argvs(command: str) -> list[list[str]]:
    """The argument lists after the program (`rknet`, `python -m rknet`, `torchrun ... -m rknet`); `...` and
    `[options]` (elisions) are dropped, and a word `a|b` gives one argument list per alternative."""
    words = [word for word in shlex.split(command.removeprefix("$ ")) if word not in ("...", "[options]")]
    start = next(i for i, word in enumerate(words) if word == "rknet" or word.endswith("/rknet")) + 1
    words = words[start:]
    split = next((i for i, word in enumerate(words) if "|" in word), None)
    if split is None:
        return [words]
    return [words[:split] + [choice] + words[split + 1:] for choice in words[split].split("|")]


def _is_mention(message: str) -> bool:
    """An inline span may name a command or option without all its arguments (`rknet eval --steps`), or with an
    upper-case placeholder for a typed value (`--steps N1,N2`); anything else (unknown option, bad choice) is stale."""
    return ("the following arguments are required" in message or "expected one argument" in message
            or re.search(r"got '[A-Z][A-Z0-9_,]*'$", message) is not None)


PYTHON_PAGES = [page for page in PAGES if any(block.language == "python" for block in _blocks(page))]
COMMANDS = [(page, number, command, inline) for page in PAGES for number, command, inline in _commands(page)]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_name)
def test_every_python_block_of_the_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__", "rknet": rknet, "torch": torch}
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


@pytest.mark.parametrize(("page", "number", "command", "inline"), COMMANDS,
                         ids=[f"{_name(page)}:{number}" for page, number, _, _ in COMMANDS])
def test_every_rknet_command_shown_parses(page, number, command, inline):
    for argv in _argvs(command):
        error = io.StringIO()
        with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
            try:
                build_parser().parse_args(argv)
            except SystemExit as exit_:
                message = error.getvalue().strip()
                if exit_.code and not (inline and _is_mention(message)):
                    pytest.fail(f"{_name(page)}:{number}: `{command}` does not parse: {message}")


def test_the_docs_show_code_and_commands():
    """The collector finds what the pages hold (a broken fence pattern would otherwise pass everything)."""
    assert len(PYTHON_PAGES) >= 8 and len(COMMANDS) >= 50


def test_a_block_marked_skip_carries_its_reason_and_the_next_does_not(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: skip (needs CIFAR-10 files) -->\n```python\nload()\n```\n\n"
                    "```python\nx = 1\n```\n\n```bash\nrknet train --epochs 2 && rknet eval OUT\n```\n")
    blocks = _blocks(page)
    assert [(block.language, block.skip) for block in blocks] == [
        ("python", "needs CIFAR-10 files"), ("python", None), ("bash", None)]
    assert _shell_commands(blocks[2].text) == ["rknet train --epochs 2", "rknet eval OUT"]
