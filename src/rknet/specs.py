"""How a layer declares one of its parameters, so that the block can own and stack it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

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

    def initial_value(self, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.init == "zeros":
            return torch.zeros(self.shape)
        if self.init == "ones":
            return torch.ones(self.shape)
        fan_in = math.prod(self.shape[1:])
        return torch.randn(self.shape, generator=generator) / math.sqrt(fan_in)
