"""The Runge-Kutta step driven by a tableau: `rk_step` (explicit stages) and `implicit_step` (implicit ones).

Blocks, trajectories and `integrate` all step through `rknet.solvers.stepping.march`; Runge-Kutta ones take
`rk_step` as the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from rknet.methods.tableau import ButcherTableau
from rknet.solvers.implicit_stages import ImplicitStages

Slope = Callable[[int, torch.Tensor], torch.Tensor]


class StageTerms(NamedTuple):
    """The non-zero coefficients of an explicit tableau, computed once per block or call.

    `rows[i]` holds the (j, a_ij) pairs with a_ij != 0, `weights` the (i, b_i) pairs with b_i != 0, and
    `needed[i]` says whether stage i contributes to the step at all.
    """

    rows: tuple[tuple[tuple[int, float], ...], ...]
    weights: tuple[tuple[int, float], ...]
    needed: tuple[bool, ...]


def stage_terms(tableau: ButcherTableau, implicit: bool = False) -> StageTerms:
    """Sparse view of an explicit tableau for `rk_step`; raises for an implicit one unless `implicit`, which
    takes A's strictly lower part (the diagonal is then solved for by the slope: `rknet.solvers.implicit_stages`)."""
    if not implicit:
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


def implicit_step(stages: ImplicitStages, slope: Slope, y: torch.Tensor, step: float, terms: StageTerms,
                  k: int = 0) -> torch.Tensor:
    """One step of an implicit tableau: all stages solved together if it is fully implicit, else stage by
    stage through `rk_step` with the diagonal terms solved for."""
    if stages.coupled:
        return stages.coupled_step(slope, y, step, k)
    return rk_step(stages.slope(slope, step, k), y, step, terms)
