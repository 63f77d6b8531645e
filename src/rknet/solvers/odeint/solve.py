"""One solve of a normalised problem with the solver a method names: the states at every time of `t`.

Embedded pairs go to `rknet.solvers.adaptive` (`AdaptiveOptions`, dense output at the output times by
default, as torchdiffeq), other Runge-Kutta tableaus to `rknet.solvers.fixed_grid` (`FixedGridOptions`),
Adams methods to `rknet.solvers.adams`, `scipy_solver` to `rknet.solvers.scipy_solver`.
"""

from __future__ import annotations

import torch

from rknet.solvers.adams import OPTIONS as ADAMS_OPTIONS
from rknet.solvers.adams import solve_adams
from rknet.solvers.adaptive import solve_adaptive
from rknet.solvers.adaptive_options import AdaptiveOptions
from rknet.solvers.fixed_grid import FixedGridOptions, solve_fixed_grid
from rknet.solvers.hooks import Callbacks
from rknet.solvers.newton_krylov import NewtonKrylov
from rknet.solvers.odeint.arguments import Problem
from rknet.solvers.odeint.names import ADAMS, ADAPTIVE, SCIPY, Method
from rknet.solvers.scipy_solver import solve_scipy


def adams_options(options: dict) -> dict:
    """The options rknet's Adams solvers take (`norm` is unused by a fixed grid, as in torchdiffeq; `perturb=False`
    and `interp="linear"` are their behaviour already)."""
    options = {k: v for k, v in options.items() if not (k == "perturb" and not v or k == "interp" and v == "linear")}
    missing = sorted(set(options) - set(ADAMS_OPTIONS) - {"norm"})
    if missing:
        raise NotImplementedError(f"option {missing[0]!r} is not implemented for the Adams methods; they take "
                                  f"{', '.join(ADAMS_OPTIONS)}")
    return {name: value for name, value in options.items() if name in ADAMS_OPTIONS}


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
    if method.kind == ADAMS:
        return solve_adams(problem.slope, problem.y0, times, problem.rtol, problem.atol, adams_options(options),
                           method.implicit, callbacks)
    if method.kind == SCIPY:
        return solve_scipy(problem.slope, problem.y0, times, problem.rtol, problem.atol, options)
    settings = stepping_options(method, options)
    if method.kind == ADAPTIVE:
        return solve_adaptive(problem.slope, problem.y0, times, method.tableau, problem.rtol, problem.atol,
                              options=settings, callbacks=callbacks)[0]
    return solve_fixed_grid(problem.slope, problem.y0, times, method.tableau, settings, callbacks,
                            implicit_solver(method, options), problem.t.dtype)
