"""A whole Runge-Kutta block as one autograd node, for small networks in eager mode.

At small sizes (vectors, short signals, a batch of a hundred) a training step is mostly per-operation
overhead: each layer evaluation records a dozen autograd nodes, each control is interpolated by its own
few operations, and the backward pass walks all of it again. `FusedBlock` runs the block's steps and
stages without recording them, with every control interpolated to every evaluation by one matrix
product, and computes the backward pass by hand (the chain rule through the stages, then through the
layer: `rknet.fused_layer`), again with one matrix product per control. Same operations in the forward
pass as the generic path, so the same numbers up to fp32 round-off (where an interpolation mixes two
controls, and in the backward pass's summation order); tests/test_fused.py holds both paths to that.

Used by the backprop strategy for `DoubleSym` layers with relu and TV norm or none (the default network)
in explicit Runge-Kutta blocks, in eager mode, on the CPU (where it was measured and tested; on a GPU it
would save kernel launches too, but it has not run on one yet). The generic path runs on GPUs, under
`torch.compile` and `torch.export`, under autocast, for other layers, norms and activations, and where
`set_enabled(False)` (or the environment variable RKNET_FUSED=0) says so. Signals run as one-row images in
channels_last layout inside (`DoubleSymMath.rows`). Not twice differentiable (an error says so).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from rknet.gradients.capabilities import capabilities_of
from rknet.gradients.fused_doublesym import DoubleSymMath, fusable_layer

_STATE = {"enabled": os.environ.get("RKNET_FUSED", "1").strip() != "0"}
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def set_enabled(enabled: bool) -> None:
    """Turn the fused path on or off for this process (it is on by default)."""
    _STATE["enabled"] = bool(enabled)


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the generic path (every operation recorded by autograd) inside this context."""
    before = _STATE["enabled"]
    _STATE["enabled"] = False
    try:
        yield
    finally:
        _STATE["enabled"] = before


class Plan:
    """What a block's fused pass replays: the layer's math, the tableau's non-zero terms, the step sizes,
    and the controls' interpolation weights of every evaluation as a matrix (evaluations x control times).
    Built for blocks declaring `explicit_tableau` (their `tableau`, `terms`, `stage_interpolation`, `layer`)."""

    def __init__(self, block: Any, math: DoubleSymMath) -> None:
        self.math, self.terms, self.sizes = math, block.terms, block.step_sizes
        self.used = [i for i, needed in enumerate(self.terms.needed) if needed]
        count = len(block.t_controls)
        self.rows = []
        for k in range(block.num_steps):
            for i in self.used:
                row = [0.0] * count
                for index, weight in block.stage_interpolation[k][i]:
                    row[index] += weight
                self.rows.append(row)
        self._matrices: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def matrix(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.dtype, like.device)
        if key not in self._matrices:
            self._matrices[key] = torch.tensor(self.rows, dtype=like.dtype, device=like.device)
        return self._matrices[key]

    def interpolate(self, names: list[str], stacked: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Every control (and what the layer derives from it) at every evaluation, stacked: one matrix
        product per control."""
        matrix = self.matrix(stacked[0])
        values = {name: (matrix @ s.flatten(1)).view(len(self.rows), *s.shape[1:]) for name, s in zip(names, stacked)}
        return self.math.prepare(values)

    @staticmethod
    def per_evaluation(values: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        unbound = [value.unbind(0) for value in values.values()]
        return [dict(zip(values, evaluation)) for evaluation in zip(*unbound)]

    def run(self, params: list[dict[str, torch.Tensor]], y: torch.Tensor, keep: bool) -> tuple[torch.Tensor, list]:
        """The block's output (as `rk_step` computes it) and what each evaluation keeps for backward."""
        rows, quadrature, needed = self.terms.rows, self.terms.weights, self.terms.needed
        saved, evaluation, y = [], 0, self.math.enter(y)
        for h in self.sizes:
            slopes: list[torch.Tensor | None] = []
            for i, row in enumerate(rows):
                if not needed[i]:
                    slopes.append(None)
                    continue
                state = y
                for j, a in row:
                    state = state.add(slopes[j], alpha=h * a)
                slope, kept = self.math.forward(params[evaluation], state, keep)
                slopes.append(slope)
                saved.append(kept)
                evaluation += 1
            for i, b in quadrature:
                y = y.add(slopes[i], alpha=h * b)
        return self.math.leave(y), saved

    def reverse(self, params: list[dict[str, torch.Tensor]], saved: list, grad: torch.Tensor,
                need_input: bool) -> tuple[torch.Tensor | None, list[dict[str, torch.Tensor]]]:
        """Backward through the steps and stages: the grad of the block's input, and the grads of the
        parameters at every evaluation."""
        rows, quadrature = self.terms.rows, self.terms.weights
        per_evaluation: list[dict[str, torch.Tensor]] = [{} for _ in saved]
        end, grad = len(saved), self.math.enter(grad)
        for k in reversed(range(len(self.sizes))):
            h, start = self.sizes[k], end - len(self.used)
            slope_grads: dict[int, torch.Tensor] = {i: grad * (h * b) for i, b in quadrature}
            total = grad
            for position in reversed(range(len(self.used))):
                i, evaluation = self.used[position], start + position
                need = bool(rows[i]) or k > 0 or need_input
                state_grad, per_evaluation[evaluation] = self.math.backward(
                    params[evaluation], saved[evaluation], slope_grads[i], need)
                if state_grad is None:
                    continue
                total = total + state_grad
                for j, a in rows[i]:
                    slope_grads[j] = (state_grad * (h * a) if j not in slope_grads
                                      else slope_grads[j].add(state_grad, alpha=h * a))
            grad, end = total, start
        return self.math.leave(grad if need_input else None), per_evaluation

    def gather(self, names: list[str], stacked: tuple[torch.Tensor, ...], per_evaluation: list[dict],
               needs: tuple[bool, ...]) -> list[torch.Tensor | None]:
        """Grads of the stacked controls from the grads at every evaluation (`collect`ed by the layer's
        math): one matrix product each."""
        matrix, grads = self.matrix(stacked[0]).t(), []
        for name, s, need in zip(names, stacked, needs):
            if not need:
                grads.append(None)
                continue
            per_control = self.math.collect(name, [g[name] for g in per_evaluation])
            grads.append((matrix @ per_control.flatten(1)).view_as(s))
        return grads


class FusedBlock(torch.autograd.Function):
    """block(y) through the fused pass: inputs (plan, names, y, *stacked controls)."""

    @staticmethod
    def forward(ctx, plan: Plan, names: list[str], y: torch.Tensor, *stacked: torch.Tensor) -> torch.Tensor:
        keep = any(ctx.needs_input_grad[2:])
        values = plan.interpolate(names, stacked)
        out, saved = plan.run(plan.per_evaluation(values), y, keep)
        if keep:  # saved through autograd, so it frees them after backward (unless retain_graph)
            ctx.plan, ctx.names, ctx.keys, ctx.per_evaluation = plan, names, list(values), len(saved[0])
            ctx.save_for_backward(*stacked, *values.values(), *(tensor for kept in saved for tensor in kept))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        plan, needs, tensors = ctx.plan, ctx.needs_input_grad, ctx.saved_tensors
        count, width = len(ctx.names), len(ctx.keys)
        stacked, values = tensors[:count], dict(zip(ctx.keys, tensors[count:count + width]))
        kept = tensors[count + width:]
        saved = [kept[i:i + ctx.per_evaluation] for i in range(0, len(kept), ctx.per_evaluation)]
        grad_y, per_evaluation = plan.reverse(plan.per_evaluation(values), saved, grad.contiguous(), needs[2])
        return None, None, grad_y, *plan.gather(ctx.names, stacked, per_evaluation, needs[3:])


def plan_for(block: Any, y: torch.Tensor) -> Plan | None:
    """The block's fused plan, or None where the generic path must run."""
    if (not _STATE["enabled"] or y.device.type != "cpu" or torch.compiler.is_compiling() or torch.jit.is_tracing()
            or torch.is_autocast_enabled(y.device.type) or y.dtype not in (torch.float32, torch.float64)):
        return None
    if not capabilities_of(block).explicit_tableau:  # the sparse tableau view Plan replays
        return None
    if block in _PLANS:
        return _PLANS[block]
    math = fusable_layer(block.layer)
    plan = None if math is None else Plan(block, math)
    _PLANS[block] = plan
    return plan


def fused_forward(block: Any, y: torch.Tensor) -> torch.Tensor | None:
    """block(y) through the fused pass, or None where it does not apply."""
    plan = plan_for(block, y)
    if plan is None:
        return None
    names = list(block.controls)
    stacked = tuple(block.controls[name] for name in names)
    if any(s.dtype != y.dtype for s in stacked):
        return None
    if not torch.is_grad_enabled():
        return plan.run(plan.per_evaluation(plan.interpolate(names, stacked)), y, False)[0]
    return FusedBlock.apply(plan, names, y, *stacked)
