"""A block's weights: how a layer declares one parameter, the block's copies stacked over control times,
and theta(t) as interpolation weights applied to those stacks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from rknet.solvers.grid import Weights

INITS = ("kernel", "zeros", "ones")


@dataclass(frozen=True)
class ParameterSpec:
    """Shape of one control's copy, how to initialise it, and whether weight decay applies.

    `decay` is True for convolution and dense weights: the trainer applies weight decay and the time
    regulariser to those only, never to biases or norm parameters.
    """

    shape: tuple[int, ...]
    init: str = "kernel"
    decay: bool = True
    scale: float = 1.0  # a kernel's initial values: scale * normal / sqrt(fan_in)

    def initial_value(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.init == "zeros":
            return torch.zeros(self.shape)
        if self.init == "ones":
            return torch.ones(self.shape)
        fan_in = math.prod(self.shape[1:])
        value = torch.randn(self.shape, generator=generator) / math.sqrt(fan_in)
        return value if self.scale == 1.0 else value * self.scale  # scale 1: the bits kernels always had


def stacked_controls(specs: Mapping[str, ParameterSpec], count: int) -> nn.ParameterDict:
    """One parameter per spec, its initial value repeated over `count` control times."""
    return nn.ParameterDict({
        name: nn.Parameter(spec.initial_value().expand(count, *spec.shape).clone())
        for name, spec in specs.items()})


def combine(stacked: torch.Tensor, weights: Weights) -> torch.Tensor:
    """sum_j w_j * stacked[j] over the (index, weight) pairs: theta at one time."""
    (first, w0), *rest = weights
    value = stacked[first] if w0 == 1.0 else stacked[first] * w0
    for index, weight in rest:
        value = value.add(stacked[index], alpha=weight)
    return value


def interpolate(controls: Mapping[str, torch.Tensor], weights: Weights) -> dict[str, torch.Tensor]:
    """Every parameter at one time, from its stack over control times."""
    return {name: combine(stacked, weights) for name, stacked in controls.items()}
