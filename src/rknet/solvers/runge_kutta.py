"""The one Runge-Kutta stage loop: explicit, diagonally implicit and IMEX steps all run through `rk_step`.

A step is driven by one or more *parts* over the same stages: each part is a tableau's sparse view
(`StageTerms`) with its slope, k_i = slope(i, Y_i). Stage i's base is y + h sum_p sum_{j<i} a^p_ij k^p_j; where a
part's diagonal a_ii is non-zero, that part *solves* the stage, Y_i = base + h a_ii g(Y_i), and every other
part evaluates its slope at Y_i. One part and no diagonal is an explicit method; one part with a diagonal a
diagonally implicit one (the solve is Newton-Krylov, `rknet.solvers.implicit_stages`); an explicit part for f
plus a diagonally implicit part for -L y is an IMEX pair (the solve is exact, `rknet.solvers.operators`).
Fully implicit tableaus (stages coupled above the diagonal) are solved all together instead (`implicit_step`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import torch

from rknet.methods.tableau import ButcherTableau
from rknet.solvers.implicit_stages import ImplicitStages, Slope, Solve


class StageTerms(NamedTuple):
    """The non-zero coefficients of a tableau, computed once per block or call.

    `rows[i]` holds the (j, a_ij) pairs with j < i and a_ij != 0, `weights` the (i, b_i) pairs with b_i != 0,
    `needed[i]` says whether stage i's slope contributes to the step at all, `diagonal` holds a_ii (empty
    for an explicit tableau), and `plan` is this tableau's `schedule` when it is stepped alone.
    """

    rows: tuple[tuple[tuple[int, float], ...], ...]
    weights: tuple[tuple[int, float], ...]
    needed: tuple[bool, ...]
    diagonal: tuple[float, ...] = ()
    plan: tuple[tuple[bool, int, tuple[bool, ...]], ...] = ()


class Part(NamedTuple):
    """One tableau's share of a step: its terms, its slope and, where its diagonal is non-zero, its solve."""

    terms: StageTerms
    slope: Slope
    solve: Solve | None = None


def needed_slopes(tableaus: Sequence[ButcherTableau]) -> tuple[tuple[bool, ...], ...]:
    """For tableaus stepped together over the same stages: whether each one's slope at stage i is needed,
    i.e. its weight b_i is non-zero or a later stage whose state is needed combines it (a_ji != 0, j > i)."""
    slopes = [[b != 0.0 for b in tableau.b] for tableau in tableaus]
    for i in reversed(range(tableaus[0].stages)):
        if any(part[i] for part in slopes):  # stage i's state is needed, and so is every slope its row combines
            for part, tableau in zip(slopes, tableaus):
                for j in range(i):
                    part[j] = part[j] or tableau.a[i][j] != 0.0
    return tuple(tuple(part) for part in slopes)


def sparse_terms(tableau: ButcherTableau, needed: tuple[bool, ...]) -> StageTerms:
    """`tableau`'s non-zero coefficients below the diagonal, its weights and diagonal, with `needed`."""
    s = tableau.stages
    rows = tuple(tuple((j, a) for j, a in enumerate(tableau.a[i][:i]) if a != 0.0) for i in range(s))
    weights = tuple((i, b) for i, b in enumerate(tableau.b) if b != 0.0)
    diagonal = tuple(tableau.a[i][i] for i in range(s))
    terms = StageTerms(rows, weights, needed, diagonal if any(diagonal) else ())
    return terms._replace(plan=schedule((terms,)))


def stage_terms(tableau: ButcherTableau, implicit: bool = False, every_stage: bool = False) -> StageTerms:
    """Sparse view of one tableau for `rk_step`; raises for an implicit one unless `implicit` (its diagonal
    is then solved for, stage by stage, by the part's solve). `every_stage` evaluates stages the step itself
    does not need (an embedded pair's error estimate uses them)."""
    if not implicit:
        tableau.require_explicit()
    needed = (True,) * tableau.stages if every_stage else needed_slopes([tableau])[0]
    return sparse_terms(tableau, needed)


def pair_terms(explicit: ButcherTableau, implicit: ButcherTableau) -> tuple[StageTerms, StageTerms]:
    """Sparse views of an IMEX pair's two tableaus, with one rule for which slopes either needs."""
    needed = needed_slopes([explicit, implicit])
    return sparse_terms(explicit, needed[0]), sparse_terms(implicit, needed[1])


@functools.lru_cache(maxsize=256)
def schedule(terms: tuple[StageTerms, ...]) -> tuple[tuple[bool, int, tuple[bool, ...]], ...]:
    """Per stage: whether any part needs it, which part solves it (-1: none), and which parts need their slope
    there. A step replays it without looking at the coefficients again."""
    plan = []
    for i in range(len(terms[0].rows)):
        solver = next((p for p, part in enumerate(terms) if part.diagonal and part.diagonal[i] != 0.0), -1)
        plan.append((any(part.needed[i] for part in terms), solver, tuple(part.needed[i] for part in terms)))
    return tuple(plan)


def step_parts(parts: Sequence[Part], y: torch.Tensor, step: float) -> torch.Tensor:
    """One step y + h sum_p sum_i b^p_i k^p_i over the parts' common stages; zero terms skipped."""
    slopes: list[list[torch.Tensor | None]] = [[] for _ in parts]
    plan = parts[0].terms.plan if len(parts) == 1 else schedule(tuple(part.terms for part in parts))
    for i, (stage_needed, solver, needed) in enumerate(plan):
        if not stage_needed:
            for values in slopes:
                values.append(None)
            continue
        state = y
        for part, values in zip(parts, slopes):
            for j, a in part.terms.rows[i]:
                state = state.add(values[j], alpha=step * a)
        if solver >= 0:
            solved, state = parts[solver].solve(i, step * parts[solver].terms.diagonal[i], state)
        for p, (part, values) in enumerate(zip(parts, slopes)):
            values.append(solved if p == solver else part.slope(i, state) if needed[p] else None)
    result = y
    for part, values in zip(parts, slopes):
        for i, b in part.terms.weights:
            result = result.add(values[i], alpha=step * b)
    return result


def rk_step(slope: Slope, y: torch.Tensor, step: float, terms: StageTerms, solve: Solve | None = None
            ) -> torch.Tensor:
    """One step y + h sum_i b_i k_i of one tableau, k_i = slope(i, y + h sum_j a_ij k_j) (with the diagonal
    term solved by `solve` where a_ii != 0)."""
    return step_parts((Part(terms, slope, solve),), y, step)


def implicit_step(stages: ImplicitStages, slope: Slope, y: torch.Tensor, step: float, terms: StageTerms,
                  k: int = 0) -> torch.Tensor:
    """One step of an implicit tableau: all stages solved together if it is fully implicit, else stage by
    stage through `rk_step` with the diagonal terms solved for."""
    if stages.coupled:
        return stages.coupled_step(slope, y, step, k)
    return rk_step(slope, y, step, terms, stages.solve(slope, k))
