"""The one time loop (`march`), the one explicit Runge-Kutta step driven by a tableau, and `integrate()`.

Blocks, trajectories and `integrate` all step through `march`; Runge-Kutta ones take `rk_step` as the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

import torch

from .grid import as_times, stage_times, step_sizes
from .implicit import NewtonKrylov
from .implicit_stages import ImplicitStages
from .tableau import ButcherTableau, get_tableau

Slope = Callable[[int, torch.Tensor], torch.Tensor]
State = TypeVar("State")


def march(step: Callable[[State, int], State], state: State, num_steps: int) -> State:
    """The state after steps k = 0 .. num_steps - 1 of `step(state, k)`."""
    for k in range(num_steps):
        state = step(state, k)
    return state


def march_states(step: Callable[[State, int], State], state: State, num_steps: int,
                 observe: Callable[[State], torch.Tensor] = lambda state: state) -> torch.Tensor:
    """Like `march`, but `observe(state)` at every state time, stacked: shape (num_steps + 1, ...)."""
    seen = [observe(state)]
    for k in range(num_steps):
        state = step(state, k)
        seen.append(observe(state))
    return torch.stack(seen)


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
    takes A's strictly lower part (the diagonal is then solved for by the slope, see `rknet.implicit`)."""
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


def integrate(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t,
              method: str | ButcherTableau = "rk4", trajectory: bool = False,
              solver: NewtonKrylov | None = None) -> torch.Tensor:
    """Integrate dy/dt = f(t, y) from y(t[0]) = y0 over the state times `t` with an explicit or implicit RK
    method (implicit stages solved by `solver`, default `NewtonKrylov()`; see `rknet.implicit`).

    `t` is any strictly increasing grid (non-uniform allowed; a tensor is read once, up front). `f` gets
    the stage time as a Python float. Returns y at t[-1], or with `trajectory=True` the states at every
    time stacked along a new first dimension. Differentiable with respect to y0 and whatever f uses.
    """
    check_problem(f, y0)
    times = as_times(t, "t")
    tableau = get_tableau(method)
    implicit = None if tableau.explicit else ImplicitStages(tableau, solver)
    terms = stage_terms(tableau, implicit=implicit is not None)
    stages, sizes = stage_times(times, tableau.c), step_sizes(times)

    def step(y: torch.Tensor, k: int) -> torch.Tensor:
        slope = lambda i, state: checked_slope(f, stages[k][i], state)  # noqa: E731
        if implicit is None:
            return rk_step(slope, y, sizes[k], terms)
        return implicit_step(implicit, slope, y, sizes[k], terms, k)

    return (march_states if trajectory else march)(step, y0, len(sizes))


def check_problem(f: Callable, y0: torch.Tensor) -> None:
    """TypeError unless f is callable and y0 a floating-point (or complex) tensor."""
    if not isinstance(y0, torch.Tensor):
        raise TypeError(f"y0 must be a torch.Tensor, got {type(y0).__name__}")
    if not (y0.is_floating_point() or y0.is_complex()):
        raise TypeError(f"y0 must be a floating-point tensor, got dtype {y0.dtype} (use y0.float())")
    if not callable(f):
        raise TypeError(f"f must be callable as f(t, y), got {type(f).__name__}")


def checked_slope(f: Callable[[float, torch.Tensor], torch.Tensor], t: float, y: torch.Tensor) -> torch.Tensor:
    """f(t, y), which must have y's shape (a silently broadcast slope would integrate another system)."""
    value = f(t, y)
    if not isinstance(value, torch.Tensor) or value.shape != y.shape:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"f(t, y) must return a tensor of y's shape {tuple(y.shape)}, got {shape}")
    return value
