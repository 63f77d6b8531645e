"""Writing small text files so that an interrupted write never leaves a half-written one behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path: Path, value: Any) -> None:
    """`value` as indented JSON, written atomically."""
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")
