"""Normalising the values of a comparison's axes, given as lists or as the command line's "a,b" text
(from Python, a config file or the command line alike)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from rknet.common.checks import comma_items, int_list, positive_int
from rknet.training.config import TrainConfig, option_table

# TrainConfig fields the grid sets itself; they cannot be given as fixed options.
GRID_FIELDS = ("data", "method", "layer", "steps", "control_steps", "widths", "seed", "out", "threads")
UNSUPPORTED_FIELDS = ("t_states", "t_controls")


def sequence(name: str, values: Any) -> list:
    if isinstance(values, str):
        values = comma_items(name, values, skip_empty=True)
    elif values is None or isinstance(values, (int, float)):
        values = [values]
    if not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must list at least one value, got {values!r}")
    return list(values)


def names(name: str, values: Any, keep_case: Callable[[str], bool] = lambda value: False) -> list[str]:
    names = sequence(name, values)
    for value in names:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{name} must be names, got {value!r}")
    return list(dict.fromkeys(v.strip() if keep_case(v.strip()) else v.strip().lower() for v in names))


def positive_ints(name: str, value: Any) -> int:
    """A positive integer, also from text such as "4"."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return positive_int(name, value)


def widths_lists(values: Any) -> list[tuple[int, ...]]:
    if isinstance(values, str):
        values = [part for part in values.split(";") if part.strip()]
    values = sequence("widths", values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        values = [values]  # a single widths setting given flat
    return [int_list("widths", widths, minimum_length=2) for widths in values]


def seeds(seeds: Any) -> int | list[int]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive count (seeds 0 .. n-1) or a list of seeds, got {seeds!r}")
        return seeds
    values = sequence("seeds", seeds)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in values):
        raise ValueError(f"seeds must be a positive count or non-negative integers, got {seeds!r}")
    return list(dict.fromkeys(values))


def fixed_options(options: Any) -> dict[str, Any]:
    if options is None:
        return {}
    for key in options if isinstance(options, dict) else ():
        name = str(key).replace("-", "_")
        if name in GRID_FIELDS:
            plural = {"method": "methods", "layer": "layers", "seed": "seeds"}.get(name, name)
            raise ValueError(f"option {key!r} is set by the grid; give it as the compare option {plural!r}")
        if name in UNSUPPORTED_FIELDS:
            raise ValueError(f"option {key!r} is not supported by compare; vary steps and control_steps instead")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return option_table(options, known - set(GRID_FIELDS) - set(UNSUPPORTED_FIELDS))


def baseline(value: Any, methods: Sequence[str], seed_count: int, keep_case: Callable[[str], bool]) -> str | None:
    """The baseline method (normalised like the methods), one of `methods`, with at least 2 seeds to pair;
    ValueError naming what is needed."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"baseline must name one of the methods, got {value!r}")
    chosen = value.strip() if keep_case(value.strip()) else value.strip().lower()
    if chosen not in methods:
        raise ValueError(f"baseline {chosen!r} is not among the methods compared ({', '.join(methods)})")
    if seed_count < 2:
        raise ValueError("--baseline compares methods seed by seed with a confidence interval over seeds: it needs "
                         f"--seeds >= 2 (got {seed_count})")
    return chosen
