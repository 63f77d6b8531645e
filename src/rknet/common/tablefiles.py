"""Reading option tables from TOML, YAML or JSON files (run configurations, tableau files).

A file may ask for no more than it holds: YAML anchors and aliases (which let a few hundred bytes stand for
gigabytes once expanded) are refused, and so is nesting deeper than `MAX_NESTING` levels."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rknet.common.limits import MAX_NESTING, TooLarge

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, published as tomli
    import tomli as tomllib

SUFFIXES = (".toml", ".yaml", ".yml", ".json")


def read_table(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The table in a .toml, .yaml/.yml or .json file; ValueError naming the file for anything else."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{what} {path} must end in .toml, .yaml, .yml or .json")
    if not path.is_file():
        raise ValueError(f"{what} {path} {not_a_file(path)}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {path} cannot be read as text ({error})") from error
    try:
        values = _parse(text, path.suffix)
        _check_depth(values)
    except TooLarge as error:
        raise ValueError(f"{what} {path}: {error}") from None
    except RecursionError:
        raise ValueError(f"{what} {path}: nested deeper than {MAX_NESTING} levels of tables and lists") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{what} {path} is not valid: {error}") from error
    except Exception as error:
        if type(error).__module__.startswith("yaml"):
            raise ValueError(f"{what} {path} is not valid YAML: {error}".replace("\n", " ")) from error
        raise
    if not isinstance(values, dict):
        raise ValueError(f"{what} {path} must hold a table of options")
    return values


def not_a_file(path: Path) -> str:
    """Why `path` cannot be read as a file, without opening it: "does not exist", "is a folder", ..."""
    if path.is_dir():
        return "is a folder, not a file"
    if path.is_fifo() or path.is_socket():
        return "is a pipe or socket, not a file"
    if path.is_char_device() or path.is_block_device():
        return "is a device, not a file"
    return "does not exist"


def _parse(text: str, suffix: str) -> Any:
    if suffix == ".toml":
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    import yaml

    class Loader(yaml.SafeLoader):
        """yaml.SafeLoader without anchors and aliases (a config never needs them; a crafted one expands)."""

        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise TooLarge(f"YAML anchors and aliases are not accepted (line {event.start_mark.line + 1}"
                                    "); write each value out")
            self.depth += 1
            if self.depth > MAX_NESTING + 1:
                raise RecursionError  # reported as too deep, as the other parsers' own RecursionError is
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return yaml.load(text, Loader=Loader) or {}


def _check_depth(values: Any) -> None:
    """TooLarge when `values` nests tables and lists deeper than MAX_NESTING (walked without recursion)."""
    level = [values]
    for _ in range(MAX_NESTING + 1):
        level = [item for value in level if isinstance(value, (dict, list))
                 for item in (value.values() if isinstance(value, dict) else value)]
        if not level:
            return
    raise TooLarge(f"nested deeper than {MAX_NESTING} levels of tables and lists")
