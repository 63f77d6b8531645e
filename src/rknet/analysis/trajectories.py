"""States of each block at every state time, and the logits the rest of a network gives them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rknet.network.odenet import ODENet


@contextmanager
def inference(module: nn.Module) -> Iterator[nn.Module]:
    """Evaluate `module` in eval mode without gradients, then restore every submodule's mode.

    Analysis must not update batch-norm running statistics, and should see the network as it predicts.
    """
    modes = {child: child.training for child in module.modules()}
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        for child, mode in modes.items():
            child.training = mode


def feature_trajectories(net: ODENet, x: torch.Tensor) -> list[torch.Tensor]:
    """For each block of `net`, its states at every state time for inputs x, in eval mode.

    Entry i has shape (len(t_states), N, channels_i, ...); the connector maps its last state to the
    next block's first.
    """
    with inference(net):
        return net(x, return_states=True)[1]


def logits_after_block(net: ODENet, index: int, z: torch.Tensor) -> torch.Tensor:
    """The logits `net` gives when block `index` outputs z (its connector, later blocks, classifier)."""
    z = net.connectors[index](z)
    for block, connector in zip(net.blocks[index + 1:], net.connectors[index + 1:], strict=True):
        z = connector(block(z))
    return net.classifier(net.pool(z))
