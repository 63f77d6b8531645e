"""Optimise-then-discretise: gradients from the continuous adjoint equation, solved backward in time.

For dy/dt = f(t, y, theta(t)) and a loss L(y(T)), the adjoint a(t) = dL/dy(t) solves
`a' = -a^T df/dy` backward from a(T) = dL/dy(T), and `dL/dtheta = int_0^T a^T df/dtheta dt`. The backward
pass integrates the augmented system (y, a) from T to 0 over the *same* grid with the *same* tableau
(steps -h), re-integrating the state backward alongside the adjoint, and accumulates the parameter
integral with the tableau's weights b. The gradient is that of the continuous problem up to the backward
solve's error, O(h^p): not the exact gradient of the discrete forward pass (that is backprop).

Re-integrating y backward is unstable where f is contractive (DoubleSym's Jacobian is negative
semi-definite, so its backward flow expands errors like e^{|lambda| t}): on the default network the
reconstructed gradient stayed 10-50% off at any step count. So a block keeps, besides its output, the
forward state at each *control time* on its grid, and the backward pass restarts y there: the
reconstruction runs over one control interval at most, and memory is one state per control time, which
does not grow as the state grid is refined (docs/gradients.md has the measurements). `callable_adjoint`
restarts y likewise at every output time it returns (as torchdiffeq does): reconstructing y over the whole
interval instead gave gradients 1-30x off on damped nonlinear problems with many outputs
(benchmarks/odeint_adjoint_restarts.py).

`rknet.gradients.block_adjoint` serves Runge-Kutta blocks with it (the `adjoint` gradient strategy: the
controls' gradients are a^T df/dtheta(t) times each control's interpolation weight); `callable_adjoint`
serves `rknet.integrate` with any f(t, y) and the tensors it uses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch.autograd.function import once_differentiable

from rknet.solvers.fixed_grid import checked_slope
from rknet.solvers.grid import stage_times, step_sizes
from rknet.solvers.runge_kutta import StageTerms, rk_step

# vjp(k, i, y, a, weight) -> (f(t, y), a^T df/dy) at stage i of backward step k (from t_{k+1} to t_k);
# it adds weight * a^T df/dtheta to the parameter gradients itself (weight = h_k b_i, 0 when b_i = 0).
Vjp = Callable[[int, int, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


def backward_times(t_states: Sequence[float], nodes: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """For every step k, the times t_{k+1} - c_i h_k at which the backward step evaluates its stages."""
    return tuple(tuple(start + end - time for time in times)
                 for start, end, times in zip(t_states, t_states[1:], stage_times(t_states, nodes)))


def backward_sweep(vjp: Vjp, y: torch.Tensor, a: torch.Tensor, sizes: Sequence[float], terms: StageTerms,
                   cotangents: Sequence[torch.Tensor | None] | None = None,
                   restarts: Mapping[int, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate (y, a) from t_N back to t_0 with the tableau of `terms`, steps -h_k; returns (y_0, a_0).

    `cotangents[k]`, when given, is added to a on reaching t_k (a loss on intermediate states);
    `restarts[k]`, when given, replaces the reconstructed y on reaching t_k (a state stored forward).
    """
    weights = dict(terms.weights)
    for k in reversed(range(len(sizes))):
        h = sizes[k]
        if restarts is not None and k + 1 in restarts:
            y = restarts[k + 1]

        def slope(i: int, state: torch.Tensor, k: int = k, h: float = h) -> torch.Tensor:
            value, pulled = vjp(k, i, state[0], state[1], h * weights.get(i, 0.0))
            return torch.stack((value, -pulled))

        y, a = rk_step(slope, torch.stack((y, a)), -h, terms).unbind(0)
        if cotangents is not None and cotangents[k] is not None:
            a = a + cotangents[k]
    return y, a


def pullback(value: torch.Tensor, inputs: Sequence[torch.Tensor], a: torch.Tensor) -> list[torch.Tensor | None]:
    """a^T d value / d inputs; None for an input value does not depend on (all None when it depends on none)."""
    if value.grad_fn is None:
        return [None] * len(inputs)
    return list(torch.autograd.grad(value, inputs, a, allow_unused=True))


RESTARTS = ("controls", "steps", "none")


class CallableAdjoint(torch.autograd.Function):
    """`integrate(f, y0, t)` on a fixed grid without a graph, returning the states at the grid indices
    `outputs`; backward solves the adjoint system, restarting y from the state stored at each of them and
    pulling gradients back to `params` (the tensors f uses that need gradients)."""

    @staticmethod
    def forward(ctx, f: Callable, times: tuple[float, ...], terms: StageTerms, nodes: tuple[float, ...],
                outputs: tuple[int, ...], y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        stages, sizes = stage_times(times, nodes), step_sizes(times)
        kept, y = [y0] if outputs[0] == 0 else [], y0
        for k in range(len(sizes)):
            y = rk_step(lambda i, state, k=k: checked_slope(f, stages[k][i], state), y, sizes[k], terms)
            if k + 1 in outputs:
                kept.append(y)
        states = torch.stack(kept)
        ctx.f, ctx.times, ctx.terms, ctx.nodes, ctx.outputs = f, times, terms, nodes, outputs
        ctx.save_for_backward(states, *params)
        return states

    @staticmethod
    @once_differentiable
    def backward(ctx, cotangent: torch.Tensor):
        states, *params = ctx.saved_tensors
        times = backward_times(ctx.times, ctx.nodes)
        grads = [torch.zeros_like(p) for p in params]

        def vjp(k: int, i: int, y: torch.Tensor, a: torch.Tensor, weight: float):
            with torch.enable_grad():
                y = y.detach().requires_grad_()
                value = ctx.f(times[k][i], y)
                pulled = pullback(value, [y, *params] if weight != 0.0 else [y], a)
            for grad, delta in zip(grads, pulled[1:]):
                if delta is not None:
                    grad.add_(delta, alpha=weight)
            return value.detach(), (torch.zeros_like(y) if pulled[0] is None else pulled[0])

        sizes = step_sizes(ctx.times)
        cotangents: list[torch.Tensor | None] = [None] * len(sizes)
        for index, value in zip(ctx.outputs[:-1], cotangent[:-1]):
            cotangents[index] = value
        restarts = dict(zip(ctx.outputs, states))
        _, a = backward_sweep(vjp, states[-1], cotangent[-1], sizes, ctx.terms, cotangents, restarts)
        return None, None, None, None, None, a, *grads


def callable_adjoint(f: Callable[[float, torch.Tensor], torch.Tensor], y0: torch.Tensor,
                     times: tuple[float, ...], terms: StageTerms, nodes: tuple[float, ...], trajectory: bool,
                     params: Sequence[torch.Tensor], outputs: Sequence[int] | None = None) -> torch.Tensor:
    """`integrate` on a fixed grid with the adjoint backward pass; gradients reach y0 and `params`.

    Returns y at times[-1], or with `trajectory` the states at the grid indices `outputs` (increasing, ending
    at the last; default every grid time), stacked. The backward pass restarts y from each returned state.
    """
    last = len(times) - 1
    chosen = tuple(range(last + 1)) if outputs is None else tuple(outputs)
    if trajectory and (list(chosen) != sorted(set(chosen)) or chosen[-1] != last or chosen[0] < 0):
        raise ValueError(f"outputs must be increasing grid indices ending at the last ({last}), got {outputs!r}")
    chosen = chosen if trajectory else (last,)
    params = params if torch.is_grad_enabled() else ()
    states = CallableAdjoint.apply(f, times, terms, nodes, chosen, y0, *params)
    return states if trajectory else states[0]
