"""The small value checks every boundary shares, each raising ValueError that names the value and what
is accepted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` if it is an integer >= `minimum` (booleans are not integers here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return value


def finite_number(name: str, value: Any, minimum: float = -math.inf, strict: bool = False) -> float:
    """`value` as a float if it is a finite number >= `minimum` (> with `strict`)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < minimum or (strict and value == minimum):
        bound = "" if minimum == -math.inf else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """`value` if it is True or False (a string such as "false" is refused, not read as true)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """`value` if it is one of `valid`."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
    return value


def comma_items(name: str, text: str, what: str = "values", skip_empty: bool = False) -> list[str]:
    """The stripped items of the command line's "a,b,c" text (the one comma-list parser). An empty item is
    an error naming `what` the items must be, or with `skip_empty` is dropped."""
    items = [item.strip() for item in text.split(",")]
    if skip_empty:
        return [item for item in items if item]
    if "" in items:
        raise ValueError(f"{name} must be comma-separated {what}, got {text!r}")
    return items


def int_list(name: str, value: Any, minimum_length: int = 1) -> tuple[int, ...]:
    """Positive integers given as a list or as the command line's "16,32,64" text."""
    if isinstance(value, str):
        parts = comma_items(name, value, "positive integers")
        if any(not part.lstrip("+").isdigit() for part in parts):
            raise ValueError(f"{name} must be comma-separated positive integers, got {value!r}")
        value = [int(part) for part in parts]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) < minimum_length \
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        count = "" if minimum_length == 1 else f"at least {minimum_length} "
        raise ValueError(f"{name} must be {count}positive integers, got {value!r}")
    return tuple(value)


def float_list(name: str, value: Any) -> list[float]:
    """Numbers given as a list or as the command line's "0,0.5,1" text (checked further by the grid)."""
    if isinstance(value, str):
        try:
            return [float(part) for part in comma_items(name, value, "numbers")]
        except ValueError as error:
            raise ValueError(f"{name} must be comma-separated numbers, got {value!r}") from error
    return value
