"""The one explicit Runge-Kutta loop, driven by a tableau, and `integrate()` built on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from .grid import as_times
from .tableau import ButcherTableau, get_tableau

Slope = Callable[[int, torch.Tensor], torch.Tensor]


class StageTerms(NamedTuple):
    """The non-zero coefficients of an explicit tableau, computed once per block or call.

    `rows[i]` holds the (j, a_ij) pairs with a_ij != 0, `weights` the (i, b_i) pairs with b_i != 0, and
    `needed[i]` says whether stage i contributes to the step at all.
    """

    rows: tuple[tuple[tuple[int, float], ...], ...]
    weights: tuple[tuple[int, float], ...]
    needed: tuple[bool, ...]


def stage_terms(tableau: ButcherTableau) -> StageTerms:
    """Sparse view of an explicit tableau for `rk_step`; raises for an implicit one."""
    tableau.require_explicit()
    s = tableau.stages
    rows = tuple(tuple((j, a) for j, a in enumerate(tableau.a[i][:i]) if a != 0.0) for i in range(s))
    weights = tuple((i, b) for i, b in enumerate(tableau.b) if b != 0.0)
    needed = [b != 0.0 for b in tableau.b]
    for i in reversed(range(s)):
        if needed[i]:
            for j, _ in rows[i]:
                needed[j] = True
    return StageTerms(rows, weights, tuple(needed))


def rk_step(slope: Slope, y: torch.Tensor, step: float, terms: StageTerms) -> torch.Tensor:
    """One step y + h sum_i b_i k_i, with k_i = slope(i, y + h sum_j a_ij k_j); zero terms skipped."""
    slopes: list[torch.Tensor | None] = []
    for i, row in enumerate(terms.rows):
        if not terms.needed[i]:
            slopes.append(None)
            continue
        stage_state = y
        for j, a in row:
            stage_state = stage_state.add(slopes[j], alpha=step * a)
        slopes.append(slope(i, stage_state))
    result = y
    for i, b in terms.weights:
        result = result.add(slopes[i], alpha=step * b)
    return result


def integrate(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t,
              method: str | ButcherTableau = "rk4", trajectory: bool = False) -> torch.Tensor:
    """Integrate dy/dt = f(t, y) from y(t[0]) = y0 over the state times `t` with an explicit RK method.

    `t` is any strictly increasing grid (non-uniform allowed; a tensor is read once, up front). `f` gets
    the stage time as a Python float. Returns y at t[-1], or with `trajectory=True` the states at every
    time stacked along a new first dimension. Differentiable with respect to y0 and whatever f uses.
    """
    if not isinstance(y0, torch.Tensor):
        raise TypeError(f"y0 must be a torch.Tensor, got {type(y0).__name__}")
    if not callable(f):
        raise TypeError(f"f must be callable as f(t, y), got {type(f).__name__}")
    times = as_times(t, "t")
    tableau = get_tableau(method)
    terms = stage_terms(tableau)
    y = y0
    states = [y0]
    for start, end in zip(times, times[1:]):
        step = end - start
        y = rk_step(lambda i, state, start=start, step=step: f(start + tableau.c[i] * step, state),
                    y, step, terms)
        if trajectory:
            states.append(y)
    return torch.stack(states) if trajectory else y
