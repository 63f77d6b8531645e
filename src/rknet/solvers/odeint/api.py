"""`odeint`, `odeint_adjoint` and `odeint_event`: torchdiffeq's functions, on rknet's solvers."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from rknet.methods.tableau import ButcherTableau
from rknet.solvers.hooks import Callbacks
from rknet.solvers.odeint.arguments import Problem, State, problem
from rknet.solvers.odeint.events import solve_event, with_event_gradient
from rknet.solvers.odeint.gradients import AdjointSettings, AdjointSolve, with_time_gradients
from rknet.solvers.odeint.names import Method, resolve
from rknet.solvers.odeint.norms import adjoint_norm, state_norm
from rknet.solvers.odeint.options import check_options, step_callbacks
from rknet.solvers.odeint.solve import integrate

Func = Callable[[torch.Tensor, State], State]
MethodArg = str | ButcherTableau | None


def _prepare(func: Func, y0, t, rtol, atol, method: MethodArg, options: Mapping | None, event_fn
             ) -> tuple[Problem, Method, dict, Callbacks]:
    """The flat problem, the method, its checked options (with the state norm) and func's callbacks."""
    flat = problem(func, y0, t, rtol, atol)
    if event_fn is not None and len(flat.t) != 2:
        raise ValueError(f"event handling needs len(t) == 2 (the start, and a time giving the direction), got "
                         f"len(t)={len(flat.t)}")
    chosen = resolve(method)
    checked = check_options(options, chosen, flat.sign)
    if "norm" in checked or flat.shapes is not None:
        checked["norm"] = state_norm(checked.get("norm"), flat.shapes)
    return flat, chosen, checked, step_callbacks(func, chosen, flat)


def _finish(flat: Problem, solution: torch.Tensor, event_fn, event_t):
    output = flat.output(solution)
    return output if event_fn is None else (event_t, output)


def odeint(func: Func, y0: State, t, *, rtol=1e-7, atol=1e-9, method: MethodArg = None,
           options: Mapping | None = None, event_fn: Callable | None = None):
    """The solution of dy/dt = func(t, y), y(t[0]) = y0, at every time of `t` (1-D, increasing or decreasing):
    shape (len(t), *y0.shape), or a tuple of such for a tuple y0. With `event_fn`, integrates from t[0] until
    event_fn(t, y) crosses zero and returns (event time, solution at [t[0], event time]).
    See docs/odeint.md for what differs from torchdiffeq."""
    flat, chosen, checked, found = _prepare(func, y0, t, rtol, atol, method, options, event_fn)
    if event_fn is not None:
        event_t, solution = solve_event(flat, chosen, checked, found, event_fn)
        return _finish(flat, solution, event_fn, event_t)
    solution = with_time_gradients(flat, flat.y0, lambda y: integrate(dataclasses.replace(flat, y0=y), chosen,
                                                                      checked, found))
    return _finish(flat, solution, None, None)


def adjoint_parameters(func: Func, given: Sequence[torch.Tensor] | None) -> tuple[torch.Tensor, ...]:
    """The tensors the adjoint pass pulls gradients back to: `given`, else func's parameters (a Module)."""
    if given is None:
        if not isinstance(func, nn.Module):
            raise ValueError("func must be an instance of nn.Module to specify the adjoint parameters; alternatively "
                             "they can be specified explicitly via the `adjoint_params` argument. If there are no "
                             "parameters then it is allowable to set `adjoint_params=()`.")
        given = func.parameters()
    if isinstance(given, torch.Tensor):
        raise TypeError("adjoint_params must be a sequence of tensors, not one tensor; wrap it in a tuple")
    given = tuple(given)
    for p in given:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"adjoint_params must hold tensors, got {type(p).__name__}")
    return tuple(p for p in given if p.requires_grad)


def odeint_adjoint(func: Func, y0: State, t, *, rtol=1e-7, atol=1e-9, method: MethodArg = None,
                   options: Mapping | None = None, event_fn: Callable | None = None, adjoint_rtol=None,
                   adjoint_atol=None, adjoint_method: MethodArg = None, adjoint_options: Mapping | None = None,
                   adjoint_params: Sequence[torch.Tensor] | None = None):
    """`odeint` whose gradients come from the adjoint equations solved backward (memory: one state per time
    of `t`): with `adjoint_method` (default `method`), `adjoint_options` (default `options` less `norm`;
    `{"norm": "seminorm"}` leaves the parameter gradients out of the error norm), `adjoint_rtol`/`atol`."""
    params = adjoint_parameters(func, adjoint_params)
    if adjoint_method is not None and adjoint_method != method and options is not None and adjoint_options is None:
        raise ValueError("If `adjoint_method != method` then we cannot infer `adjoint_options` from `options`. So as "
                         "`options` has been passed then `adjoint_options` must be passed as well.")
    flat, chosen, checked, found = _prepare(func, y0, t, rtol, atol, method, options, event_fn)
    backward_method = chosen if adjoint_method is None else resolve(adjoint_method)
    given = dict(adjoint_options) if adjoint_options is not None else {
        k: v for k, v in (options or {}).items() if k != "norm"}
    norm = adjoint_norm(given.pop("norm", None), state_norm((options or {}).get("norm"), flat.shapes), flat.shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the forward check already warned about the same options
        backward_options = check_options(given, backward_method, -flat.sign)
    settings = AdjointSettings(backward_method, backward_options,
                               flat.rtol if adjoint_rtol is None else problem(func, y0, t, adjoint_rtol, 1).rtol,
                               flat.atol if adjoint_atol is None else problem(func, y0, t, 0, adjoint_atol).atol,
                               step_callbacks(func, backward_method, dataclasses.replace(flat, sign=-flat.sign),
                                              adjoint=True), norm)

    def solve(y: torch.Tensor, start: Problem = flat) -> torch.Tensor:
        return AdjointSolve.apply(start, chosen, checked, found, settings, y, *params)

    if event_fn is not None:
        event_t, solution = solve_event(flat, chosen, checked, found, event_fn, solve)
        return _finish(flat, solution, event_fn, event_t)
    return _finish(flat, with_time_gradients(flat, flat.y0, solve), None, None)


def odeint_event(func: Func, y0: State, t0: torch.Tensor, *, event_fn: Callable, reverse_time: bool = False,
                 odeint_interface: Callable = odeint, **kwargs):
    """Integrate from t0 until event_fn(t, y) = 0; returns (event time, solution at [t0, event time]), with the
    event time differentiable (implicit function theorem: dt*/dtheta = -(dg/dtheta) / (dg/dt along the flow))."""
    t0 = torch.as_tensor(t0).reshape(-1)
    t = torch.cat([t0, t0.detach() + (-1.0 if reverse_time else 1.0)])
    event_t, solution = odeint_interface(func, y0, t, event_fn=event_fn, **kwargs)
    return with_event_gradient(func, y0, t, event_fn, event_t, solution)
