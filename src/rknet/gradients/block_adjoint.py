"""The continuous adjoint of a Runge-Kutta block: the `adjoint` gradient strategy."""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from rknet.gradients.capabilities import check_norm_supported
from rknet.layers.controls import combine
from rknet.solvers.adjoint import RESTARTS, Vjp, backward_sweep, backward_times, pullback
from rknet.solvers.grid import Weights, interpolation_weights

# Running statistics of a backward solve at other states would be meaningless.
ADJOINT_NORMS = ("tv", "none")
ADJOINT_NORM_REASON = "running statistics cannot follow a backward solve inside a block"


def reverse_stage_interpolation(block: Any) -> tuple[tuple[Weights, ...], ...]:
    """The controls' interpolation weights at every backward stage time. A time inside step k (not its start)
    takes the left limit at a knot, so piecewise-constant controls give each step its own control, as forward does."""
    c = block.tableau.c
    return tuple(tuple(interpolation_weights(block.t_controls, time, block.interpolation, from_left=ci < 1)
                       for time, ci in zip(times, c))
                 for times in backward_times(block.t_states, c))


def _block_vjp(block: Any, stacked: dict[str, torch.Tensor], grads: dict[str, torch.Tensor]) -> Vjp:
    interpolation = reverse_stage_interpolation(block)

    def vjp(k: int, i: int, y: torch.Tensor, a: torch.Tensor, quadrature: float):
        with torch.enable_grad():
            y = y.detach().requires_grad_()
            params = {name: combine(value, interpolation[k][i]).detach().requires_grad_(quadrature != 0.0)
                      for name, value in stacked.items()}
            value = block.layer(params, y)
            wanted = [y] + ([*params.values()] if quadrature != 0.0 else [])
            pulled = pullback(value, wanted, a)
        for name, grad in zip(params, pulled[1:]):
            if grad is not None:
                for index, w in interpolation[k][i]:
                    grads[name][index].add_(grad, alpha=quadrature * w)
        return value.detach(), pulled[0]

    return vjp


def restart_steps(block: Any, where: str) -> tuple[int, ...]:
    """The state times (as step indices) whose forward states the backward pass restarts from."""
    if where not in RESTARTS:
        raise ValueError(f"unknown adjoint restart {where!r}; valid: {', '.join(RESTARTS)}")
    if where == "steps":
        return tuple(range(block.num_steps))
    if where == "controls":
        return tuple(sorted({k for k, t in enumerate(block.t_states[:-1]) for c in block.t_controls
                             if abs(t - c) <= 1e-12 * max(1.0, abs(c))}))
    return ()


class BlockAdjoint(torch.autograd.Function):
    """block(y) computed without a graph; backward solves the adjoint system. Saves the output and the
    states at the steps `keep` (the step index of each), from which the backward pass restarts y."""

    @staticmethod
    def forward(ctx, block: Any, keep: tuple[int, ...], y: torch.Tensor, *stacked: torch.Tensor) -> torch.Tensor:
        kept, step = [], block.step
        cache: dict = {}
        for k in range(block.num_steps):
            if k in keep:
                kept.append(y)
            y = step(y, k, cache)
        ctx.block, ctx.keep = block, keep
        ctx.save_for_backward(y, *stacked, *kept)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, cotangent: torch.Tensor):
        output, *rest = ctx.saved_tensors
        block = ctx.block
        stacked, kept = rest[:len(block.controls)], rest[len(block.controls):]
        values = dict(zip(block.controls, stacked))
        grads = {name: torch.zeros_like(value) for name, value in values.items()}
        restarts = dict(zip(ctx.keep, kept))
        _, a = backward_sweep(_block_vjp(block, values, grads), output, cotangent, block.step_sizes, block.terms,
                              restarts=restarts)
        return None, None, a, *grads.values()


@torch.compiler.disable
def block_adjoint(block: Any, y: torch.Tensor, restart: str = "controls") -> torch.Tensor:
    """block(y) whose backward pass solves the continuous adjoint equation (see the module docstring),
    restarting y from the forward states at the control times (`restart="controls"`), at every step
    (`"steps"`: memory grows with the steps) or nowhere (`"none"`: the output only, unstable backward).

    Under torch.compile this block runs eagerly (a graph break): its backward pass is a loop of
    vector-Jacobian products that autograd runs, not a graph to compile; the rest of the network compiles.
    """
    check_norm_supported("gradient 'adjoint'", block.layer.norm, ADJOINT_NORMS, ADJOINT_NORM_REASON)
    if not torch.is_grad_enabled():
        return block.integrate(y)
    return BlockAdjoint.apply(block, restart_steps(block, restart), y, *block.controls.values())
