"""MkDocs hooks for the rknet site: BENCHMARKS.md (outside docs/) becomes the page benchmarks.md, and every
public name of `rknet` (its `__all__`) must have a docstring and an entry on an API page, else a warning,
which `mkdocs build --strict` turns into a failed build."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import griffe
from mkdocs.structure.files import File

ROOT = Path(__file__).parent
log = logging.getLogger("mkdocs.plugins.rknet")


def on_files(files, config):
    """Add BENCHMARKS.md as benchmarks.md, its links to docs/ pages made relative to the site."""
    text = (ROOT / "BENCHMARKS.md").read_text().replace("](docs/", "](")
    files.append(File.generated(config, "benchmarks.md", content=text))
    return files


def on_page_markdown(markdown, page, config, files):
    """Links to ../BENCHMARKS.md in docs/ pages point at the generated page."""
    return markdown.replace("](../BENCHMARKS.md", "](benchmarks.md")


def on_pre_build(config):
    """Warn about a public name without a docstring or without an API-page entry."""
    package = griffe.load("rknet", search_paths=[str(ROOT / "src")])
    documented = set()
    for page in (ROOT / "docs" / "api").glob("*.md"):
        documented.update(re.findall(r"^::: rknet\.(\w+)", page.read_text(), re.MULTILINE))
    for name in package.exports or ():
        if name.startswith("__"):
            continue
        member = package.members[name]
        target = member.final_target if member.is_alias else member
        if not (target.docstring and target.docstring.value.strip()):
            log.warning(f"rknet.{name} has no docstring")
        if name not in documented:
            log.warning(f"rknet.{name} is public but on no page of docs/api (add '::: rknet.{name}')")
