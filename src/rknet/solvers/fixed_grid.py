"""Fixed-grid stepping with any Runge-Kutta tableau (explicit or implicit).

* `integrate_on_grid(f, y0, t, method)`: `rknet.integrate`'s fixed grid: the steps are the intervals of t.
* `solve_fixed_grid(f, y0, times, method, FixedGridOptions(...), callbacks)`: `odeint`'s fixed-grid methods,
  with torchdiffeq's options `step_size`, `grid_constructor`, `interp` ("linear" / "cubic", plus rknet's
  "step": land on every output time) and `perturb`; `FixedGridOptions.from_options(options)` parses an
  odeint options dict. `build_grid` and `grid_stepper` are its parts, for the adjoint and event solvers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields

import torch

from rknet.common.checks import finite_number, slope_matches
from rknet.common.limits import GRID_STEPS
from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.adaptive_options import as_float
from rknet.solvers.dense_output import hermite, linear
from rknet.solvers.grid import as_times, stage_times, step_sizes
from rknet.solvers.hooks import NO_CALLBACKS, Callbacks, nudge
from rknet.solvers.implicit_stages import ImplicitStages
from rknet.solvers.newton_krylov import NewtonKrylov
from rknet.solvers.runge_kutta import implicit_step, rk_step, stage_terms
from rknet.solvers.stepping import march, march_states

GRID_INTERPS = ("linear", "cubic", "step")


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
    return slope_matches("f(t, y)", value, y)


@dataclass(frozen=True)
class FixedGridOptions:
    """torchdiffeq's fixed-grid options (see `solve_fixed_grid`)."""

    step_size: float | None = None
    grid_constructor: Callable | None = None
    interp: str = "linear"
    perturb: bool = False

    def __post_init__(self) -> None:
        if self.step_size is not None and self.grid_constructor is not None:
            raise ValueError("step_size and grid_constructor are mutually exclusive arguments.")
        if self.step_size is not None:
            finite_number("options['step_size']", self.step_size, 0, strict=True)
        if self.grid_constructor is not None and not callable(self.grid_constructor):
            raise ValueError("options['grid_constructor'] must be callable as grid_constructor(func, y0, t)")
        if self.interp not in GRID_INTERPS:
            raise ValueError(f"options['interp'] must be one of {', '.join(GRID_INTERPS)} for a fixed-grid "
                             f"method, got {self.interp!r}")

    @classmethod
    def from_options(cls, options: Mapping | None) -> tuple[FixedGridOptions, dict]:
        """(FixedGridOptions from an odeint `options` dict, the entries it does not use)."""
        given = dict(options or {})
        unused = {key: given.pop(key) for key in list(given) if key not in {f.name for f in fields(cls)}}
        if given.get("step_size") is not None:
            given["step_size"] = as_float(given["step_size"], "step_size")
        return cls(**given), unused


def build_grid(times: Sequence[float], options: FixedGridOptions, f: Callable, y0: torch.Tensor,
               time_dtype: torch.dtype = torch.float64) -> tuple[float, ...]:
    """The step grid from times[0] to times[-1]: `times` itself, `grid_constructor(f, y0, t)` (t the times as a
    tensor of `time_dtype`), or steps of `step_size` from times[0] in `time_dtype` (torchdiffeq's arithmetic),
    the last moved onto times[-1]; with interp="step", merged with every time of `times`."""
    if options.grid_constructor is not None:
        grid = options.grid_constructor(f, y0, torch.tensor(times, dtype=time_dtype))
        grid = as_times(grid, "the grid from grid_constructor")
        if grid[0] != times[0] or grid[-1] != times[-1]:
            raise ValueError(f"grid_constructor must return a grid from t[0] = {times[0]:g} to t[-1] = "
                             f"{times[-1]:g}, got one from {grid[0]:g} to {grid[-1]:g}")
    elif options.step_size is not None:
        GRID_STEPS.check("options['step_size']", (times[-1] - times[0]) / options.step_size)
        start, end = torch.tensor(times[0], dtype=time_dtype), torch.tensor(times[-1], dtype=time_dtype)
        count = int(torch.ceil((end - start) / options.step_size + 1).item())
        points = (torch.arange(0, count, dtype=time_dtype) * options.step_size + start).tolist()[:-1]
        grid = tuple(p for p in points if p < times[-1]) + (times[-1],)
    else:
        grid = tuple(times)
    if options.interp != "step":
        return grid
    spacing = min(b - a for a, b in zip(grid, grid[1:]))
    kept = [p for p in grid if all(abs(p - s) > 1e-9 * spacing for s in times)]
    return tuple(sorted(set(kept) | set(times)))


def solve_fixed_grid(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, times: Sequence[float],
                     method: str | ButcherTableau, options: FixedGridOptions = FixedGridOptions(),
                     callbacks: Callbacks = NO_CALLBACKS, solver: NewtonKrylov | None = None,
                     time_dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The states at every time of the increasing `times` (stacked), stepping over `build_grid(...)`.

    An output time between two grid points is interpolated as torchdiffeq does: `interp="linear"` (default)
    between the step's end states, "cubic" the Hermite cubic with the slopes at both ends (one more f per step
    holding outputs); "step" merges the output times into the grid instead (outputs are solutions; more
    accurate, more steps). `perturb=True` evaluates the first stage just after the step's start and stages at
    c = 1 just before its end (torchdiffeq's Perturb.NEXT / PREV). `callbacks.step(t0, y0, dt)` runs before
    every step.
    """
    tableau = get_tableau(method)
    grid = build_grid(times, options, f, y0, time_dtype)
    step = grid_stepper(f, tableau, solver, options.perturb, y0.abs().dtype)
    states, j, y = [y0], 1, y0
    for k, (t0, t1) in enumerate(zip(grid, grid[1:])):
        if callbacks.step is not None:
            callbacks.step(t0, y, t1 - t0)
        y1, f0 = step(t0, t1, y, k)
        f1 = f(t1, y1) if options.interp == "cubic" and j < len(times) and t1 >= times[j] else None
        while j < len(times) and t1 >= times[j]:
            states.append(linear(t0, t1, y, y1, times[j]) if f1 is None
                          else hermite(t0, t1, y, y1, f0, f1, times[j]))
            j += 1
        y = y1
    return torch.stack(states)


def grid_stepper(f: Callable, tableau: ButcherTableau, solver: NewtonKrylov | None = None, perturb: bool = False,
                 eval_dtype: torch.dtype = torch.float64):
    """step(t0, t1, y, k) -> (y at t1, f(t0, y)): one step of `tableau` (explicit or implicit)."""
    implicit = None if tableau.explicit else ImplicitStages(tableau, solver)
    terms, c = stage_terms(tableau, implicit=implicit is not None), tableau.c
    first_is_f0 = c[0] == 0 and not any(tableau.a[0])

    def step(t0: float, t1: float, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        h, slopes = t1 - t0, {}

        def slope(i: int, state: torch.Tensor) -> torch.Tensor:
            at = t1 if c[i] == 1 else t0 + c[i] * h
            side = (1 if i == 0 and c[i] == 0 else -1 if c[i] == 1 else 0) if perturb else 0
            slopes[i] = checked_slope(f, nudge(at, side, eval_dtype), state)
            return slopes[i]

        y1 = rk_step(slope, y, h, terms) if implicit is None else implicit_step(implicit, slope, y, h, terms, k)
        f0 = slopes[0] if first_is_f0 and 0 in slopes else checked_slope(f, nudge(t0, int(perturb), eval_dtype), y)
        return y1, f0

    return step
