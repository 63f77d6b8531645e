"""Regularisation in time of the weights of dynamic and reversible blocks, and their box constraint."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch import nn

from rknet.blocks.base import Block
from rknet.common.checks import finite_number


def _kernel_controls(model: nn.Module) -> Iterator[tuple[tuple[float, ...], torch.Tensor]]:
    """(control times, stacked kernel weights) for every kernel of every block in `model`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module (a model or a block), got {type(model).__name__}")
    for module in model.modules():
        if isinstance(module, Block):
            for name in module.decay_parameter_names():
                yield module.t_controls, module.get_parameter(name)


@functools.lru_cache(maxsize=64)
def _gaps(times: tuple[float, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """t_{k+1} - t_k on the device, built once per grid: no host-to-device copy in every training step."""
    return torch.tensor(times, dtype=dtype, device=device).diff()


def time_regularization(model: nn.Module) -> torch.Tensor:
    """sum_blocks sum_kernels sum_k ||theta_{k+1} - theta_k||^2 / (t_{k+1} - t_k).

    The squared H^1 seminorm of the piecewise-linear kernel weights theta(t): it penalises weights that
    change fast in time, which keeps the ODE smooth enough to refine. Kernels only (no biases or norm
    parameters). Zero for a single control time, or for a model without blocks.
    """
    total = torch.zeros(())
    for times, stacked in _kernel_controls(model):
        jumps = (stacked[1:] - stacked[:-1]).flatten(1).square().sum(dim=1)
        total = total + (jumps / _gaps(times, stacked.dtype, stacked.device)).sum()
    return total


@torch.no_grad()
def clip_weights_(model: nn.Module, bound: float) -> None:
    """Box constraint: clamp the kernel weights of every block in `model` to [-bound, bound], in place."""
    finite_number("bound", bound, 0, strict=True)
    for _, stacked in _kernel_controls(model):
        stacked.clamp_(-bound, bound)
