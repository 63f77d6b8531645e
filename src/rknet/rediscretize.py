"""Re-discretise a trained network: another integrator or state grid, the same controls theta(t).

If the network learned an ODE, its accuracy survives a finer grid or a different method; if it only
learned a fixed-depth map, it does not.
"""

from __future__ import annotations

import warnings

import torch

from .block import DynamicBlock
from .grid import GridWarning, uniform_grid
from .network import ODENet


def evaluation_times(block: DynamicBlock) -> list[float]:
    """The time of every layer evaluation, in the order of the block's batch-norm statistics rows."""
    return [start + c * step for start, step in zip(block.t_states, block.steps) for c in block.tableau.c]


def _nearest(times: list[float], time: float) -> int:
    return min(range(len(times)), key=lambda i: abs(times[i] - time))


def transfer_statistics(source: DynamicBlock, target: DynamicBlock) -> None:
    """Give each evaluation of `target` the batch-norm statistics of `source`'s nearest-in-time one."""
    old, new = evaluation_times(source), evaluation_times(target)
    rows = torch.tensor([_nearest(old, t) for t in new])
    for name, buffer in source.named_buffers():
        getattr(target, name).copy_(buffer[rows.to(buffer.device)])


def rediscretize(model: ODENet, method: str | None = None, steps: int | None = None) -> ODENet:
    """A copy of `model` integrated with `method` over `steps` equal steps of the same time interval.

    The controls keep their times (the original state grid when they had none of their own), so the
    weights theta(t) are the same function of time; only the discretisation of the ODE changes.
    """
    config = dict(model.config)
    states = config["t_states"]
    if config["t_controls"] is None:
        config["t_controls"] = list(states)
    if method is not None:
        config["method"] = method
    if steps is not None:
        config["t_states"] = list(uniform_grid(steps, states[-1], states[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GridWarning)
        copy = ODENet(**config)
    reference = next(model.parameters())
    copy.to(device=reference.device, dtype=reference.dtype)
    state = {k: v for k, v in model.state_dict().items()
             if not any(k.startswith(f"blocks.{i}.") and "running" in k for i in range(len(model.blocks)))}
    copy.load_state_dict(state, strict=False)
    with torch.no_grad():
        for source, target in zip(model.blocks, copy.blocks):
            transfer_statistics(source, target)
    return copy.train(model.training)
