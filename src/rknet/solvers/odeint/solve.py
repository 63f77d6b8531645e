"""One solve of a normalised problem with the solver a method names: the states at every time of `t`.

Embedded pairs go to `rknet.solvers.adaptive` (`AdaptiveOptions`, dense output at the output times by
default, as torchdiffeq), other Runge-Kutta tableaus to `rknet.solvers.fixed_grid` (`FixedGridOptions`),
Adams methods to `rknet.solvers.adams`, `scipy_solver` to `rknet.solvers.scipy_solver`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from rknet.solvers.adaptive import solve_adaptive
from rknet.solvers.adaptive_options import AdaptiveOptions
from rknet.solvers.fixed_grid import FixedGridOptions, solve_fixed_grid
from rknet.solvers.hooks import Callbacks
from rknet.solvers.newton_krylov import NewtonKrylov
from rknet.solvers.odeint.arguments import Problem
from rknet.solvers.odeint.names import ADAMS, ADAPTIVE, SCIPY, Method


def _multistep(module: str, name: str) -> Callable:
    try:
        return getattr(importlib.import_module(f"rknet.solvers.{module}"), name)
    except (ImportError, AttributeError) as error:
        raise NotImplementedError(f"this build has no rknet.solvers.{module}.{name}, which this method needs"
                                  ) from error


def stepping_options(method: Method, options: dict) -> AdaptiveOptions | FixedGridOptions:
    """The stepping layer's options from checked odeint options (those of other solver kinds already dropped)."""
    if method.kind == ADAPTIVE:
        return AdaptiveOptions.from_options(options)[0]
    return FixedGridOptions.from_options(options)[0]


def implicit_solver(method: Method, options: dict) -> NewtonKrylov | None:
    """The Newton-Krylov solver of an implicit tableau's stages (`max_iters` caps the Newton iterations)."""
    if method.tableau is None or method.tableau.explicit or options.get("max_iters") is None:
        return None
    return NewtonKrylov(max_newton=int(options["max_iters"]))


def integrate(problem: Problem, method: Method, options: dict, callbacks: Callbacks) -> torch.Tensor:
    """The flat states at every time of problem.t, shape (len(t), *y0.shape), in y0's dtype."""
    times = problem.times
    if len(times) == 1:
        return problem.y0[None]
    if method.kind in (ADAMS, SCIPY):
        solver = _multistep("adams", "solve_adams") if method.kind == ADAMS else _multistep("scipy_solver",
                                                                                          "solve_scipy")
        extra = {"implicit": method.implicit} if method.kind == ADAMS else {}
        return solver(problem.slope, problem.y0, times, problem.rtol, problem.atol, options, **extra)
    settings = stepping_options(method, options)
    if method.kind == ADAPTIVE:
        return solve_adaptive(problem.slope, problem.y0, times, method.tableau, problem.rtol, problem.atol,
                              options=settings, callbacks=callbacks)[0]
    return solve_fixed_grid(problem.slope, problem.y0, times, method.tableau, settings, callbacks,
                            implicit_solver(method, options), problem.t.dtype)
