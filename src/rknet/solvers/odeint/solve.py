"""One solve of a normalised problem with the solver a method names: the states at every time of `t`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from rknet.solvers.adaptive import MAX_STEPS, solve_adaptive
from rknet.solvers.fixed_grid import integrate_on_grid
from rknet.solvers.odeint.arguments import Problem
from rknet.solvers.odeint.names import ADAMS, ADAPTIVE, SCIPY, Method

# Options this build's solvers take; the others torchdiffeq has are refused by name until they are implemented.
_SUPPORTED = {ADAPTIVE: {"first_step", "max_num_steps", "dtype", "norm"}, "fixed": {"step_size", "norm"}}


def _multistep(module: str, name: str) -> Callable:
    try:
        return getattr(importlib.import_module(f"rknet.solvers.{module}"), name)
    except (ImportError, AttributeError) as error:
        raise NotImplementedError(f"this build has no rknet.solvers.{module}.{name}, which this method needs"
                                  ) from error


def _step_grid(times: tuple[float, ...], step: float) -> tuple[tuple[float, ...], list[int]]:
    """Steps of `step` from times[0], cut at every time of `times`; and where those times sit in the grid."""
    if isinstance(step, torch.Tensor):
        step = step.item()
    if not isinstance(step, (int, float)) or isinstance(step, bool) or not step > 0:
        raise ValueError(f"options['step_size'] must be a positive number, got {step!r}")
    count = int((times[-1] - times[0]) / step + 1e-9)
    points = {times[0] + k * step for k in range(1, count + 1)}
    points = {p for p in points if all(abs(p - s) > 1e-9 * step for s in times) and p < times[-1]}
    grid = tuple(sorted(points | set(times)))
    return grid, [grid.index(s) for s in times]


def integrate(problem: Problem, method: Method, options: dict, callbacks: dict) -> torch.Tensor:
    """The flat states at every time of problem.t, shape (len(t), *y0.shape), in y0's dtype."""
    times = problem.times
    if len(times) == 1:
        return problem.y0[None]
    if method.kind in (ADAMS, SCIPY):
        solver = _multistep("adams", "solve_adams") if method.kind == ADAMS else _multistep("scipy_solver",
                                                                                          "solve_scipy")
        extra = {"implicit": method.implicit} if method.kind == ADAMS else {}
        return solver(problem.slope, problem.y0, times, problem.rtol, problem.atol, options, **extra)
    kind = ADAPTIVE if method.kind == ADAPTIVE else "fixed"
    missing = sorted(set(options) - _SUPPORTED[kind]) + sorted(callbacks)
    if missing:
        raise NotImplementedError(f"odeint option or callback {missing[0]!r} is not implemented in this build")
    if method.kind == ADAPTIVE:
        return solve_adaptive(problem.slope, problem.y0, times, method.tableau, problem.rtol, problem.atol,
                              options.get("first_step"), options.get("max_num_steps", MAX_STEPS))[0]
    grid, where = _step_grid(times, options["step_size"]) if options.get("step_size") is not None else (times, None)
    states = integrate_on_grid(problem.slope, problem.y0, grid, method.tableau, trajectory=True)
    return states if where is None else states[where]
