"""The small value checks every boundary shares, each raising ValueError that names the value and what
is accepted."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from rknet.common.limits import shown


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """`value` if it is an integer >= `minimum` (booleans are not integers here)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {shown(value)}")
    return value


def finite_number(name: str, value: Any, minimum: float = -math.inf, strict: bool = False,
                  maximum: float = math.inf, below: bool = False) -> float:
    """`value` as a float if it is a finite number >= `minimum` (> with `strict`) and <= `maximum` (< with
    `below`)."""
    try:
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer beyond any float
        number = math.nan
    if not (math.isfinite(number) and (number > minimum if strict else number >= minimum)
            and (number < maximum if below else number <= maximum)):
        bounds = [f"{'>' if strict else '>='} {minimum:g}"] if minimum > -math.inf else []
        bounds += [f"{'<' if below else '<='} {maximum:g}"] if maximum < math.inf else []
        raise ValueError(f"{name} must be a finite number{''.join(' ' + b for b in bounds[:1])}"
                         f"{''.join(' and ' + b for b in bounds[1:])}, got {shown(value)}")
    return number


def sensible(name: str, value: Any, ok: bool, accepted: str, why: str) -> Any:
    """`value` when `ok`: a setting that is well-formed but cannot mean anything is refused, naming the
    option, its value, what is accepted and why."""
    if not ok:
        raise ValueError(f"{name} must be {accepted}, got {shown(value)}: {why}")
    return value


def tolerance(name: str, value: Any, below: float = math.inf) -> float | torch.Tensor:
    """An error tolerance (rtol, atol) as a float, or a tensor of them: finite, >= 0 and < `below` (an
    infinite or NaN tolerance would switch the error control off without a word)."""
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise ValueError(f"{name} cannot require gradient")
        detached = value.detach()
        if detached.is_complex() or not bool((torch.isfinite(detached) & (detached >= 0) & (detached < below)).all()):
            bound = "" if below == math.inf else f" and < {below:g}"
            raise ValueError(f"{name} must hold finite numbers >= 0{bound}, got {shown(value)}")
        return detached
    return finite_number(name, value, 0, maximum=below, below=True)


def slope_matches(what: str, value: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """`value` unless it is a complex slope for a real state, whose imaginary part a cast would drop (TypeError)."""
    if value.is_complex() and not state.is_complex():
        raise TypeError(f"{what} returned a complex slope ({value.dtype}) for a real state ({state.dtype}); its "
                        "imaginary part would be dropped: give a complex y0 to integrate a complex system")
    return value


def boolean(name: str, value: Any) -> bool:
    """`value` if it is True or False (a string such as "false" is refused, not read as true)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {shown(value)}")
    return value


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """`value` if it is one of `valid`."""
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {name} {shown(value)}; valid: {', '.join(valid)}")
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
