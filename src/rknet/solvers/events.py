"""Terminal events: integrate until `event_fn(t, y)` changes sign and locate that time on the dense output.

`solve_until_event(f, y0, t0, event_fn, method, rtol, atol, options)` steps from (t0, y0) (adaptively for an
`AdaptiveOptions`, in steps of `step_size` for a `FixedGridOptions`) until the sign of `event_fn` at the end
of a step differs from its sign at t0, then bisects the step's interpolant (the pair's dense output; the
linear or cubic interpolant of a fixed grid) until the bracket is narrower than atol, as torchdiffeq's
`find_event` does. A vector-valued `event_fn` is combined first (`combined_event`): the event is the first
sign change of any component. Returns (event time as a float, the interpolated state there, differentiable
through the steps; the event time's own gradient is the front's, by the implicit function theorem).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch

from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.adaptive import PairIntegrator, Tolerance
from rknet.solvers.adaptive_options import AdaptiveOptions
from rknet.solvers.dense_output import hermite, linear
from rknet.solvers.fixed_grid import FixedGridOptions, grid_stepper
from rknet.solvers.hooks import NO_CALLBACKS, Callbacks
from rknet.solvers.newton_krylov import NewtonKrylov

EventFn = Callable[[float, torch.Tensor], torch.Tensor]
MAX_FIXED_STEPS = 20_000


def combined_event(event_fn: EventFn, t0: float, y0: torch.Tensor) -> EventFn:
    """One scalar event function from a vector one: each component times its sign at (t0, y0), the minimum of
    those, so the combination starts non-negative and turns negative when any component changes sign."""
    with torch.no_grad():
        signs = torch.sign(event_fn(t0, y0))
    return lambda t, y: torch.min(event_fn(t, y) * signs)


def sign_of(event_fn: EventFn, t: float, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.sign(event_fn(t, y)).item())


def find_event(interpolant: Callable[[float], torch.Tensor], sign0: float, t0: float, t1: float,
               event_fn: EventFn, tol: float) -> tuple[float, torch.Tensor]:
    """Bisect [t0, t1] (event_fn has sign0 at t0, another sign at t1) to a bracket under `tol`; its midpoint
    and the interpolated state there."""
    with torch.no_grad():
        for _ in range(max(0, math.ceil(math.log2((t1 - t0) / tol)))):
            middle = (t0 + t1) / 2
            if sign_of(event_fn, middle, interpolant(middle)) == sign0:
                t0 = middle
            else:
                t1 = middle
    event_t = (t0 + t1) / 2
    return event_t, interpolant(event_t)


def event_tolerance(atol: Tolerance) -> float:
    """The bisection tolerance: atol (its smallest entry if it is given per element)."""
    return float(atol.min().item()) if isinstance(atol, torch.Tensor) else float(atol)


def solve_until_event(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor, t0: float,
                      event_fn: EventFn, method: str | ButcherTableau, rtol: Tolerance, atol: Tolerance,
                      options: AdaptiveOptions | FixedGridOptions, callbacks: Callbacks = NO_CALLBACKS,
                      solver: NewtonKrylov | None = None) -> tuple[float, torch.Tensor]:
    """(event time, state there) of dy/dt = f(t, y), y(t0) = y0, integrated forward from t0 (see module doc)."""
    event_fn = combined_event(event_fn, t0, y0)
    tableau = get_tableau(method)
    if isinstance(options, FixedGridOptions):
        return _fixed_grid_event(f, y0, t0, event_fn, tableau, atol, options, solver)
    integrator = PairIntegrator(f, y0, t0, tableau, rtol, atol, options, callbacks)
    sign0 = sign_of(event_fn, t0, y0)
    if sign0 == 0:
        return t0, y0
    attempts = 0
    while sign_of(event_fn, integrator.t, integrator.y) == sign0:
        if attempts >= options.max_num_steps:
            raise ValueError(f"no event after {attempts} steps (t={integrator.t:g}); raise max_num_steps or check "
                             "that event_fn changes sign")
        integrator.attempt()
        attempts += 1
    step = integrator.interpolant
    return find_event(step, sign0, step.t0, step.t1, event_fn, event_tolerance(atol))


def _fixed_grid_event(f, y0, t0, event_fn, tableau, atol, options, solver):
    if options.step_size is None:
        raise ValueError("Event handling for fixed step solvers currently requires `step_size` to be provided "
                         "in options.")
    step = grid_stepper(f, tableau, solver, options.perturb, y0.abs().dtype)
    sign0, y = sign_of(event_fn, t0, y0), y0
    for k in range(MAX_FIXED_STEPS):
        t1 = t0 + options.step_size
        y1, f0 = step(t0, t1, y, k)
        if sign_of(event_fn, t1, y1) != sign0:
            interpolant = (partial(hermite, t0, t1, y, y1, f0, f(t1, y1)) if options.interp == "cubic"
                           else partial(linear, t0, t1, y, y1))
            return find_event(interpolant, sign0, t0, t1, event_fn, event_tolerance(atol))
        t0, y = t1, y1
    raise RuntimeError(f"Reached maximum number of iterations {MAX_FIXED_STEPS}.")
