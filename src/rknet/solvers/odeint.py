"""`rknet.odeint`: torchdiffeq's call shape on rknet's solvers, so torchdiffeq code runs by changing an import.

`odeint(func, y0, t, rtol=1e-7, atol=1e-9, method="dopri5", options=None)` returns the state at every time
of the 1-D tensor `t` (increasing or decreasing), stacked along a new first dimension; `func(t, y)` gets
`t` as a 0-d tensor of t's dtype. Embedded pairs (dopri5, tsit5, bosh3/bs3, fehlberg45) step adaptively;
any other method steps on `t`, or with `options={"step_size": h}` in steps of h from t[0], cut to land on
every time of `t`. `odeint_adjoint` (or `adjoint=True`) computes gradients from the adjoint equation,
solved backward with the same method: adaptively from the stored state at each time of `t` for a pair,
over the same grid otherwise (`rknet.solvers.adjoint`). Differences from torchdiffeq: see docs/gradients.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch.autograd.function import once_differentiable

from rknet.methods.tableau import ButcherTableau, get_tableau
from rknet.solvers.adaptive import MAX_STEPS, solve_adaptive
from rknet.solvers.adjoint import callable_adjoint
from rknet.solvers.fixed_grid import check_problem, checked_slope, integrate_on_grid
from rknet.solvers.grid import as_times
from rknet.solvers.integrate import adjoint_parameters
from rknet.solvers.runge_kutta import stage_terms

ALIASES = {"bosh3": "bs3", "fehlberg": "fehlberg45"}
OPTIONS = ("step_size", "first_step", "max_num_steps")


def _grid(times: Sequence[float], step: float) -> tuple[tuple[float, ...], list[int]]:
    """Steps of `step` from times[0], cut at every time of `times`; and where those times sit in the grid."""
    if not isinstance(step, (int, float)) or isinstance(step, bool) or not step > 0:
        raise ValueError(f"options['step_size'] must be a positive number, got {step!r}")
    count = int((times[-1] - times[0]) / step + 1e-9)
    points = {times[0] + k * step for k in range(1, count + 1)}
    points = {p for p in points if all(abs(p - s) > 1e-9 * step for s in times) and p < times[-1]}
    grid = tuple(sorted(points | set(times)))
    return grid, [grid.index(s) for s in times]


class AdaptiveAdjoint(torch.autograd.Function):
    """Adaptive solve without a graph; backward integrates (y, a, dL/dparams) from each time of `t` to the
    previous one, restarting y from the stored forward state there (as torchdiffeq does)."""

    @staticmethod
    def forward(ctx, f: Callable, times: tuple[float, ...], tableau: ButcherTableau, tolerances: tuple,
                y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        states, _ = solve_adaptive(f, y0, times, tableau, *tolerances)
        ctx.f, ctx.times, ctx.tableau, ctx.tolerances = f, times, tableau, tolerances
        ctx.save_for_backward(states, *params)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, cotangents: torch.Tensor):
        states, *params = ctx.saved_tensors
        sizes = [states[0].numel(), states[0].numel(), *(p.numel() for p in params)]

        def augmented(tau: float, z: torch.Tensor) -> torch.Tensor:  # in reversed time tau = -t
            y, a = z[:sizes[0]].view_as(states[0]), z[sizes[0]:sum(sizes[:2])].view_as(states[0])
            with torch.enable_grad():
                y = y.detach().requires_grad_()
                value = ctx.f(-tau, y)
                pulled = torch.autograd.grad(value, [y, *params], a, allow_unused=True)
            pulled = [torch.zeros_like(x) if g is None else g for g, x in zip(pulled, [y, *params])]
            return torch.cat([-value.detach().flatten(), *(g.flatten() for g in pulled)])

        a, grads = cotangents[-1], torch.zeros(sum(sizes[2:]), dtype=states.dtype, device=states.device)
        for k in reversed(range(len(ctx.times) - 1)):
            z = torch.cat([states[k + 1].flatten(), a.flatten(), grads])
            z = solve_adaptive(augmented, z, (-ctx.times[k + 1], -ctx.times[k]), ctx.tableau, *ctx.tolerances)[0][-1]
            a = z[sizes[0]:sum(sizes[:2])].view_as(states[0]) + cotangents[k]
            grads = z[sum(sizes[:2]):]
        split = grads.split(sizes[2:]) if params else ()
        return None, None, None, None, a, *(g.view_as(p) for g, p in zip(split, params))


def odeint(func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y0: torch.Tensor, t, *, rtol: float = 1e-7,
           atol: float = 1e-9, method: str | ButcherTableau | None = None, options: Mapping | None = None,
           adjoint: bool = False, adjoint_params: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """The solution of dy/dt = func(t, y), y(t[0]) = y0, at every time of `t`: shape (len(t), *y0.shape)."""
    check_problem(func, y0)
    values = t.detach().cpu().tolist() if isinstance(t, torch.Tensor) else list(t)
    sign = -1.0 if len(values) > 1 and values[-1] < values[0] else 1.0
    times = as_times([sign * s for s in values], "t (increasing or decreasing)")
    name = method or "dopri5"
    tableau = get_tableau(ALIASES.get(name, name) if isinstance(name, str) else name).require_explicit()
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown odeint option {unknown[0]!r}; rknet.odeint takes {', '.join(OPTIONS)}")
    time_dtype = t.dtype if isinstance(t, torch.Tensor) and t.is_floating_point() else y0.dtype

    def f(s: float, y: torch.Tensor) -> torch.Tensor:
        value = checked_slope(lambda s, y: func(torch.tensor(sign * s, dtype=time_dtype, device=y.device), y), s, y)
        return value if sign > 0 else -value

    params = adjoint_parameters(func, adjoint_params) if adjoint and torch.is_grad_enabled() else []
    if tableau.b_hat is not None and "step_size" not in options:
        tolerances = (rtol, atol, options.get("first_step"), options.get("max_num_steps", MAX_STEPS))
        if adjoint:
            return AdaptiveAdjoint.apply(f, times, tableau, tolerances, y0, *params)
        return solve_adaptive(f, y0, times, tableau, *tolerances)[0]
    grid, where = _grid(times, options["step_size"]) if "step_size" in options else (times, list(range(len(times))))
    if adjoint:
        states = callable_adjoint(f, y0, grid, stage_terms(tableau), tableau.c, True, params)
    else:
        states = integrate_on_grid(f, y0, grid, tableau, trajectory=True)
    return states if len(where) == len(grid) else states[where]


def odeint_adjoint(func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], y0: torch.Tensor, t, *,
                   rtol: float = 1e-7, atol: float = 1e-9, method: str | ButcherTableau | None = None,
                   options: Mapping | None = None, adjoint_params: Sequence[torch.Tensor] | None = None
                   ) -> torch.Tensor:
    """`odeint` whose backward pass solves the adjoint equation (memory independent of the steps)."""
    return odeint(func, y0, t, rtol=rtol, atol=atol, method=method, options=options, adjoint=True,
                  adjoint_params=adjoint_params)
