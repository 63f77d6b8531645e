"""Reading option tables from TOML, YAML or JSON files (run configurations, tableau files)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

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
        raise ValueError(f"{what} {path} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {path} cannot be read as text ({error})") from error
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{what} {path} is not valid: {error}") from error
    except Exception as error:
        if type(error).__module__.startswith("yaml"):
            raise ValueError(f"{what} {path} is not valid YAML: {error}".replace("\n", " ")) from error
        raise
    if not isinstance(values, dict):
        raise ValueError(f"{what} {path} must hold a table of options")
    return values
