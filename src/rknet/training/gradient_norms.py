"""Per-block gradient norms, for logging how the gradient is spread over a network's depth."""

from __future__ import annotations

import torch
from torch import nn

from rknet.blocks.base import Block


def _gradient_norm(module: nn.Module) -> float:
    norms = [torch.linalg.vector_norm(p.grad.detach()) for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)).item() if norms else 0.0


def block_gradient_norms(model: nn.Module) -> dict[str, float]:
    """The 2-norm of each block's parameter gradient (call after `backward()`), keyed by module
    name ("blocks.0", ...). A block whose parameters have no gradient reports 0.0."""
    return {name: _gradient_norm(module) for name, module in model.named_modules()
            if isinstance(module, Block)}
