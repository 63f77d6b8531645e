"""`integrate` on a fixed grid with any Runge-Kutta tableau (explicit or implicit)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.grid import as_times, stage_times, step_sizes
from rknet.solvers.implicit_stages import ImplicitStages
from rknet.solvers.newton_krylov import NewtonKrylov
from rknet.solvers.runge_kutta import implicit_step, rk_step, stage_terms
from rknet.solvers.stepping import march, march_states


def integrate_on_grid(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t,
              method: str | ButcherTableau = "rk4", trajectory: bool = False,
              solver: NewtonKrylov | None = None) -> torch.Tensor:
    """Integrate dy/dt = f(t, y) from y(t[0]) = y0 over the state times `t` with an explicit or implicit RK
    method (implicit stages solved by `solver`, default `NewtonKrylov()`; see `rknet.solvers.newton_krylov`).

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
