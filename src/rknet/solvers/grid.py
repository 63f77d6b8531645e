"""Time grids: validation, interpolation weights of the controls at stage times, refinement.

Everything here works on Python floats at construction time, so a forward pass only replays
precomputed coefficients (no host synchronisation, nothing for `torch.compile` to trace through).
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Sequence

import torch

from rknet.common.checks import positive_int
from rknet.common.limits import GRID_STEPS, shown
from rknet.methods.tableau import ButcherTableau

INTERPOLATIONS: tuple[str, ...] = ("linear", "constant")
_KNOT_TOLERANCE = 1e-12

# One interpolated value: sum of weight * control[index] over a few (index, weight) pairs.
Weights = tuple[tuple[int, float], ...]


class GridWarning(UserWarning):
    """A time grid that is valid but costs accuracy (e.g. a control knot strictly inside a step)."""


def as_times(values, what: str, minimum: int = 2) -> tuple[float, ...]:
    """Validate a strictly increasing grid of at least `minimum` finite times; return Python floats."""
    if isinstance(values, torch.Tensor):
        if values.dim() != 1:
            raise ValueError(f"{what} must be a 1-D sequence of times, got a tensor of shape "
                             f"{tuple(values.shape)}")
        values = values.detach().cpu().tolist()
    elif type(values).__module__ == "numpy" and hasattr(values, "tolist"):  # a numpy array or scalar
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{what} must be a sequence of times, got {values!r}")
    try:
        times = tuple(float(v) for v in values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{what} must contain numbers only, got {list(values)!r}") from error
    if len(times) < minimum:
        raise ValueError(f"{what} needs at least {minimum} time{'s' if minimum > 1 else ''}, "
                         f"got {len(times)}")
    if any(t != t or abs(t) == float("inf") for t in times):
        raise ValueError(f"{what} must be finite, got {list(times)}")
    for earlier, later in zip(times, times[1:]):
        if later <= earlier:
            kind = "repeated" if later == earlier else "unsorted"
            raise ValueError(f"{what} must be strictly increasing; {kind} times {earlier:g} then "
                             f"{later:g} in {list(times)}")
    return times


def check_interpolation(interpolation: str) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; valid: {', '.join(INTERPOLATIONS)}")
    return interpolation


def check_span(t_states: Sequence[float], t_controls: Sequence[float]) -> None:
    """Controls must cover the state interval (one control time means weights constant in time)."""
    if len(t_controls) == 1:
        return
    if t_controls[0] > t_states[0] + _KNOT_TOLERANCE or t_controls[-1] < t_states[-1] - _KNOT_TOLERANCE:
        raise ValueError(f"t_controls [{t_controls[0]:g}, {t_controls[-1]:g}] must span t_states "
                         f"[{t_states[0]:g}, {t_states[-1]:g}]; rknet does not extrapolate controls")


def interpolation_weights(t_controls: Sequence[float], time: float, interpolation: str,
                          from_left: bool = False) -> Weights:
    """Weights of the controls that give theta(time).

    `constant` holds each control until the next control time. At a control knot `from_left=True`
    takes the left limit, which is what the last stage of a step ending on that knot must see.
    """
    if len(t_controls) == 1:
        return ((0, 1.0),)
    last = len(t_controls) - 1
    time = min(max(time, t_controls[0]), t_controls[-1])
    if interpolation == "constant":
        position = bisect.bisect_left if from_left else bisect.bisect_right
        index = max(min(position(t_controls, time) - 1, last), 0)
        return ((index, 1.0),)
    index = min(max(bisect.bisect_right(t_controls, time) - 1, 0), last - 1)
    left, right = t_controls[index], t_controls[index + 1]
    fraction = (time - left) / (right - left)
    if fraction <= _KNOT_TOLERANCE:
        return ((index, 1.0),)
    if fraction >= 1 - _KNOT_TOLERANCE:
        return ((index + 1, 1.0),)
    return ((index, 1.0 - fraction), (index + 1, fraction))


def step_sizes(t_states: Sequence[float]) -> tuple[float, ...]:
    """h_k = t_{k+1} - t_k."""
    return tuple(end - start for start, end in zip(t_states, t_states[1:]))


def stage_times(t_states: Sequence[float], nodes: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """For every step k, the stage times t_k + c_i h_k (the one place they are computed)."""
    return tuple(tuple(start + ci * step for ci in nodes) for start, step in zip(t_states, step_sizes(t_states)))


def stage_interpolation(t_states: Sequence[float], t_controls: Sequence[float], tableau: ButcherTableau,
                        interpolation: str) -> tuple[tuple[Weights, ...], ...]:
    """For every step and stage, the controls' interpolation weights at the stage time t_k + c_i h_k.

    A stage with c_i > 0 sees theta's left limit at a control knot: what the end of a step must see."""
    return tuple(tuple(interpolation_weights(t_controls, time, interpolation, from_left=ci > 0)
                       for time, ci in zip(times, tableau.c))
                 for times in stage_times(t_states, tableau.c))


def knots_inside_steps(t_states: Sequence[float], t_controls: Sequence[float]) -> list[float]:
    """Control times lying strictly inside a state step (where theta(t) has a kink or a jump)."""
    inside = []
    for knot in t_controls:
        k = bisect.bisect_right(t_states, knot) - 1
        if 0 <= k < len(t_states) - 1:
            left, right = t_states[k], t_states[k + 1]
            if left + _KNOT_TOLERANCE < knot < right - _KNOT_TOLERANCE:
                inside.append(knot)
    return inside


def warn_knots_inside_steps(t_states: Sequence[float], t_controls: Sequence[float],
                            tableau: ButcherTableau, interpolation: str) -> None:
    """Warn when the controls' kinks (linear) or jumps (constant) fall inside a step.

    theta(t) is then not smooth within that step, whose local error falls to O(h^3) (linear) or O(h^2)
    (constant): with a knot inside every step a method is at most second (first) order.
    """
    if len(t_controls) == 1:
        return
    limit = 2 if interpolation == "linear" else 1
    inside = knots_inside_steps(t_states, t_controls)
    if inside and tableau.order > limit:
        warnings.warn(f"{len(inside)} control times ({shown(inside)}) lie strictly inside state steps: with "
                      f"{interpolation} interpolation the weights are not smooth there, so {tableau.name} "
                      f"(order {tableau.order}) loses accuracy there, down to order {limit} when every "
                      "step holds a knot; put control times on state times to keep the full order",
                      GridWarning, stacklevel=3)


def uniform_grid(steps: int, final_time: float = 1.0, start: float = 0.0) -> tuple[float, ...]:
    """`steps` equal steps from `start` to `final_time`."""
    GRID_STEPS.check("steps", positive_int("steps", steps))
    if final_time <= start:
        raise ValueError(f"final time must exceed the start time {start:g}, got {final_time:g}")
    return tuple(start + (final_time - start) * k / steps for k in range(steps + 1))


def refine_times(times: Sequence[float], factor: int) -> tuple[float, ...]:
    """Split every interval of `times` into `factor` equal parts."""
    GRID_STEPS.check("refinement", positive_int("refinement factor", factor) * (len(times) - 1))
    refined = [times[0]]
    for left, right in zip(times, times[1:]):
        refined.extend(left + (right - left) * j / factor for j in range(1, factor + 1))
    return tuple(refined)
