"""Gradients of `odeint`: with respect to the times `t`, and by the adjoint method.

Times: y(t_i) moves with t_i at the rate f(t_i, y_i), and y(t_i) for i > 0 moves with t_0 by
-Phi(t_i, t_0) f(t_0, y_0). So dL/dt_i = <g_i, f(t_i, y_i)> for every output i (g_i = dL/dy(t_i)), and
dL/dt_0 gets -<a_0, f(t_0, y_0)> more, with a_0 = dL/dy0 the gradient that reaches y0. Two identity
functions add these terms: `StartTime` on y0 (where a_0 arrives, whichever way the solve is
differentiated) and `OutputTimes` on the solution. The solve itself runs on detached times. This is the
derivative of the exact solution (torchdiffeq's backprop mode differentiates its interpolant instead);
its error is the solve's.

Adjoint: `AdjointSolve` solves without a graph, keeps the state at every time of `t`, and backward
integrates (y, a, dL/dparams) from each output time to the previous one with the adjoint method, options
and tolerances, restarting y from the stored state (as torchdiffeq does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from rknet.solvers.hooks import Callbacks
from rknet.solvers.odeint.arguments import Problem, unflatten
from rknet.solvers.odeint.names import Method
from rknet.solvers.odeint.solve import integrate


def _slope(problem: Problem, i: int, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return problem.func(problem.t[i].detach().to(problem.time_dtype), y)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    value = (a * b).sum()
    return value.real if value.is_complex() else value


class StartTime(torch.autograd.Function):
    """y0 unchanged; backward adds -<a_0, f(t_0, y_0)> to dL/dt_0."""

    @staticmethod
    def forward(ctx, problem: Problem, t: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        ctx.problem = problem
        ctx.save_for_backward(y0)
        return y0.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, a: torch.Tensor):
        (y0,) = ctx.saved_tensors
        grad_t = torch.zeros_like(ctx.problem.t)
        grad_t[0] = -_dot(a, _slope(ctx.problem, 0, y0))
        return None, grad_t, a


class OutputTimes(torch.autograd.Function):
    """The solution unchanged; backward gives dL/dt_i = <g_i, f(t_i, y_i)>."""

    @staticmethod
    def forward(ctx, problem: Problem, t: torch.Tensor, solution: torch.Tensor) -> torch.Tensor:
        ctx.problem = problem
        ctx.save_for_backward(solution)
        return solution.view_as(solution)

    @staticmethod
    @once_differentiable
    def backward(ctx, grads: torch.Tensor):
        (solution,) = ctx.saved_tensors
        grad_t = torch.stack([_dot(g, _slope(ctx.problem, i, y)) for i, (g, y) in enumerate(zip(grads, solution))])
        return None, grad_t.to(ctx.problem.t.dtype), grads


def with_time_gradients(problem: Problem, y0: torch.Tensor, solve: Callable[[torch.Tensor], torch.Tensor]
                        ) -> torch.Tensor:
    """solve(y0), with the gradient with respect to problem.t linked in when t needs one."""
    if not (problem.t.requires_grad and torch.is_grad_enabled()):
        return solve(y0)
    return OutputTimes.apply(problem, problem.t, solve(StartTime.apply(problem, problem.t, y0)))


@dataclass
class AdjointSettings:
    """How the backward solve runs: method, options (already checked for the reversed direction), tolerances,
    callbacks; `norm(state_tuple)` measures (t, y, a, *param_grads) when the method steps adaptively."""

    method: Method
    options: dict
    rtol: float | torch.Tensor
    atol: float | torch.Tensor
    callbacks: Callbacks
    norm: Callable | None


def _augmented_tolerance(tol: float | torch.Tensor, params: int) -> float | torch.Tensor:
    if not isinstance(tol, torch.Tensor):
        return tol
    flat = tol.reshape(-1)
    return torch.cat([flat, flat, flat.min().expand(params)])


class AdjointSolve(torch.autograd.Function):
    """`integrate` without a graph; backward solves the adjoint equations interval by interval."""

    @staticmethod
    def forward(ctx, problem: Problem, method: Method, options: dict, callbacks: Callbacks, settings: AdjointSettings,
                y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            states = integrate(dataclasses.replace(problem, y0=y0.detach()), method, options, callbacks)
        ctx.problem, ctx.settings = problem, settings
        ctx.adjoint_options = {**settings.options, **({"norm": settings.norm} if settings.norm else {})}
        ctx.save_for_backward(states, *params)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, cotangents: torch.Tensor):
        states, *params = ctx.saved_tensors
        problem, settings = ctx.problem, ctx.settings
        n, sizes = problem.y0.numel(), [p.numel() for p in params]
        shape = problem.y0.shape

        def augmented(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            y = z[:n].detach().view(shape).requires_grad_()
            with torch.enable_grad():
                value = problem.func(t, y)
                pulled = (torch.autograd.grad(value, [y, *params], z[n:2 * n].view(shape), allow_unused=True)
                          if value.requires_grad else [None] * (1 + len(params)))
            pulled = [torch.zeros_like(x) if g is None else g for g, x in zip(pulled, [y, *params])]
            return torch.cat([value.detach().reshape(-1), *(-g.reshape(-1).to(z.dtype) for g in pulled)])

        options = dict(ctx.adjoint_options)
        norm = options.pop("norm", None)
        if norm is not None:
            options["norm"] = lambda z: norm(_norm_tuple(z, shape, params))
        rtol, atol = (_augmented_tolerance(tol, sum(sizes)) for tol in (settings.rtol, settings.atol))
        a = cotangents[-1].reshape(-1)
        grads = torch.zeros(sum(sizes), dtype=states.dtype, device=states.device)
        for k in reversed(range(1, len(states))):
            z = torch.cat([states[k].reshape(-1), a, grads])
            backward = Problem(augmented, z, None, problem.t[[k, k - 1]].detach(), -problem.sign, rtol, atol)
            z = integrate(backward, settings.method, options, settings.callbacks)[-1]
            a, grads = z[n:2 * n] + cotangents[k - 1].reshape(-1), z[2 * n:]
        split = grads.split(sizes) if params else ()
        return None, None, None, None, None, a.view(shape), *(g.view_as(p) for g, p in zip(split, params))


def _norm_tuple(z: torch.Tensor, shape: torch.Size, params: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """The flat augmented state as torchdiffeq's adjoint norms see it: (t, y, a, *param_grads), y and a in the
    (flat) state's shape (the t-adjoint is not integrated here: it is 0)."""
    n, time = shape.numel(), torch.zeros((), dtype=z.dtype, device=z.device)
    return (time, z[:n].view(shape), z[n:2 * n].view(shape), *unflatten(z[2 * n:], (), [p.shape for p in params]))
