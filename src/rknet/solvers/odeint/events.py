"""Event handling for `odeint(..., event_fn=)` and `odeint_event`.

The event function is combined as torchdiffeq combines it (each component made positive at t0, then the
minimum: the first component to cross zero ends the solve). The crossing is located by the stepping
layer (`rknet.solvers.events`) on its dense output; the state there is differentiable through the steps,
or (adjoint) solved again from t0 to the event time by the adjoint solve. `odeint_event` adds the event
time's own gradient by the implicit function theorem: g(t*, y(t*)) = 0 gives
dt*/dp = -(dg/dy dy/dp) / (dg/dt + dg/dy f), so a cotangent on t* becomes one on y(t*) (torchdiffeq's rerouting).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch.autograd.functional import vjp

from rknet.solvers.events import solve_until_event
from rknet.solvers.hooks import Callbacks
from rknet.solvers.odeint.arguments import Problem, problem, unflatten
from rknet.solvers.odeint.names import ADAPTIVE, FIXED, Method
from rknet.solvers.odeint.solve import implicit_solver, stepping_options


def combined_event(flat: Problem, event_fn: Callable) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """event_fn on the caller's time and state, as one scalar positive at t0: min_i(sign_i(t0) g_i)."""

    def event(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = event_fn(t, y if flat.shapes is None else unflatten(y, (), flat.shapes))
        return torch.as_tensor(value).real

    with torch.no_grad():
        signs = torch.sign(event(flat.t[0].detach().to(flat.time_dtype), flat.y0))
    return lambda t, y: torch.min(event(t, y) * signs)


def solve_event(flat: Problem, method: Method, options: dict, callbacks: Callbacks, event_fn: Callable,
                solve: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(event time in the caller's time, states at [t0, event time]). Without `solve`, the state at the event is
    the stepping layer's (differentiable through its steps); `solve(y0, problem)` instead solves again from t0
    to the event time (the adjoint's way)."""
    if method.kind not in (ADAPTIVE, FIXED):
        raise NotImplementedError(f"event handling is not implemented for method {method.name!r}; use a "
                                  "Runge-Kutta method (adaptive, or fixed-grid with options['step_size'])")
    event = combined_event(flat, event_fn)
    located, state = solve_until_event(flat.slope, flat.y0, flat.times[0], lambda s, y: event(flat.user_time(s), y),
                                       method.tableau, flat.rtol, flat.atol, stepping_options(method, options),
                                       callbacks, implicit_solver(method, options))
    event_t = torch.tensor(flat.sign * located, dtype=flat.t.dtype, device=flat.t.device)
    if solve is None:
        return event_t, torch.stack([flat.y0, state])
    until = dataclasses.replace(flat, t=torch.stack([flat.t[0].detach(), event_t]))
    states = solve(until.y0, until)
    return _Unrouted.apply(event_t, states), states


class _Unrouted(torch.autograd.Function):
    """The event time, in the graph of the adjoint solve but passing no gradient (as torchdiffeq's adjoint mode:
    `odeint_event` adds the event time's gradient)."""

    @staticmethod
    def forward(ctx, event_t: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        return event_t.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None


class _EventGradient(torch.autograd.Function):
    """(event time, state there) unchanged; a cotangent on the event time is rerouted onto the state."""

    @staticmethod
    def forward(ctx, func: Callable, event: Callable, event_t: torch.Tensor, state: torch.Tensor):
        ctx.func, ctx.event = func, event
        ctx.save_for_backward(event_t, state)
        return event_t.detach(), state.detach()

    @staticmethod
    def backward(ctx, grad_t: torch.Tensor, grad_state: torch.Tensor):
        event_t, state = ctx.saved_tensors
        with torch.no_grad():
            slope = ctx.func(event_t.detach(), state.detach())
        with torch.enable_grad():
            _, (dg_dt, dg_dy) = vjp(ctx.event, (event_t.detach().clone().requires_grad_(),
                                                state.detach().clone().requires_grad_()))
        total = dg_dt + (dg_dy * slope).sum()
        grad_t = grad_t + (grad_state * slope).sum()
        return None, None, None, grad_state + dg_dy * (-grad_t / (total + 1e-12))


def with_event_gradient(func: Callable, y0, t: torch.Tensor, event_fn: Callable, event_t: torch.Tensor, solution):
    """odeint_event's output: the event time and solution, differentiable through the event time."""
    flat = problem(func, y0, t, 0.0, 0.0)
    event = combined_event(flat, event_fn)
    last = solution[-1] if flat.shapes is None else torch.cat([s[-1].reshape(-1) for s in solution])
    event_t, last = _EventGradient.apply(flat.func, event, event_t.to(flat.time_dtype), last)
    if flat.shapes is None:
        return event_t, torch.cat([solution[:-1], last[None]])
    parts = unflatten(last, (), flat.shapes)
    return event_t, tuple(torch.cat([s[:-1], p[None]]) for s, p in zip(solution, parts))
