"""`rknet.integrate`: one call for a fixed grid, adaptive stepping, and the adjoint gradient.

* Fixed grid (default): the method's steps are the intervals of `t` (`rknet.solvers.fixed_grid.integrate_on_grid`).
* Adaptive (`rtol` or `atol` given): an embedded pair (`dopri5`, `tsit5`, `bs3`, `fehlberg45`) chooses its
  own steps between the times of `t` (`rknet.solvers.adaptive`); `stats` receives what it cost.
* `adjoint=True`: the forward pass keeps no graph; the backward pass solves the adjoint equation backward
  over the same grid (`rknet.solvers.adjoint`), pulling gradients back to y0 and `adjoint_params`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence

import torch
from torch import nn

from rknet.common.checks import boolean
from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.adaptive import solve_adaptive
from rknet.solvers.adjoint import callable_adjoint
from rknet.solvers.fixed_grid import check_problem, checked_slope, integrate_on_grid
from rknet.solvers.grid import as_times
from rknet.solvers.newton_krylov import NewtonKrylov
from rknet.solvers.runge_kutta import stage_terms


def integrate(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t,
              method: str | ButcherTableau = "rk4", trajectory: bool = False, *, adjoint: bool = False,
              adjoint_params: Sequence[torch.Tensor] | None = None, rtol: float | None = None,
              atol: float | None = None, stats: MutableMapping[str, int] | None = None,
              solver: NewtonKrylov | None = None) -> torch.Tensor:
    """Integrate dy/dt = f(t, y) from y(t[0]) = y0 and return y at t[-1] (with `trajectory=True`, the states
    at every time of `t`, stacked along a new first dimension).

    `t` is a strictly increasing grid (a list, array or 1-D tensor, read once); `f` gets the time as a
    Python float and must return a tensor of y's shape. With `rtol` and/or `atol` (the other defaults to
    0), the method must be an embedded pair and steps adaptively, landing on every time of `t`; pass a
    dict as `stats` to receive {"evaluations", "accepted", "rejected"}. Otherwise the steps are the
    intervals of `t`; a diagonally implicit tableau (backward_euler, sdirk2, ...) solves each stage with
    `solver` (default `rknet.NewtonKrylov()`).

    `adjoint=True` (fixed grid only) saves memory: gradients come from the continuous adjoint equation
    (optimise-then-discretise, accurate to the method's order, not the exact gradient of the discrete
    result). They reach y0 and `adjoint_params`, the tensors f uses; when f is an nn.Module they default
    to its parameters, otherwise they must be given (pass [] when f uses none).
    """
    check_problem(f, y0)
    trajectory, adjoint = boolean("trajectory", trajectory), boolean("adjoint", adjoint)
    times = as_times(t, "t")
    tableau = get_tableau(method)
    adaptive = rtol is not None or atol is not None
    if adjoint and adaptive:
        raise ValueError("adjoint=True here needs a fixed grid: drop rtol/atol and give the steps as t, or use "
                         "rknet.odeint_adjoint, which also solves the adjoint adaptively")
    if adaptive:
        solved, cost = solve_adaptive(lambda s, y: checked_slope(f, s, y), y0, times, tableau,
                                      rtol or 0.0, atol or 0.0)
        if stats is not None:
            stats.update(cost.as_dict())
        return solved if trajectory else solved[-1]
    if stats is not None and tableau.explicit:  # implicit stages count their Newton iterations instead
        stats.update(evaluations=(len(times) - 1) * sum(stage_terms(tableau).needed),
                     accepted=len(times) - 1, rejected=0)
    if not adjoint:
        return integrate_on_grid(f, y0, times, tableau, trajectory, solver)
    params = adjoint_parameters(f, adjoint_params)
    return callable_adjoint(f, y0, times, stage_terms(tableau), tableau.c, trajectory, params)


def adjoint_parameters(f: Callable, given: Sequence[torch.Tensor] | None) -> list[torch.Tensor]:
    """The tensors an adjoint solve pulls gradients back to: `given`, or f's parameters if f is a Module."""
    if given is not None:
        if isinstance(given, torch.Tensor):
            raise TypeError("adjoint_params must be a sequence of tensors, not one tensor; wrap it in a list")
        given = list(given)
        for p in given:
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"adjoint_params must hold tensors (e.g. list(module.parameters())), got "
                                f"{type(p).__name__}")
        return [p for p in given if p.requires_grad]
    if isinstance(f, nn.Module):
        return [p for p in f.parameters() if p.requires_grad]
    raise ValueError("adjoint=True needs adjoint_params, the tensors f uses that need gradients (pass [] if "
                     "none), unless f is an nn.Module, whose parameters are taken")
