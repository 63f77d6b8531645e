"""Batch-norm statistics recomputed over training rows before each evaluation (`--bn-recompute ROWS`).

At the default learning rate the weights move fast, and running statistics (an exponential average with
momentum 0.1 over the last batches) trail them: the main job's validation accuracy read 22 % after epoch 2
with the running statistics and 95 % with statistics recomputed for the same weights. So before each
validation the statistics of every batch norm, the network's modules and the blocks' per-evaluation ones,
are recomputed in train mode without gradients over the first ROWS training rows (unaugmented, in their
fixed order: no random numbers drawn, so training and its resumption are unchanged), as the cumulative
average over batches that `torch.optim.swa_utils.update_bn` computes.
"""

from __future__ import annotations

import torch
from torch import nn

from rknet.common import distributed
from rknet.layers.norms import block_statistics_momentum
from rknet.training.loop import autocast, memory_format

BLOCK_STATISTICS_SUFFIX = "_running_mean"  # the blocks' per-evaluation statistics: SITE_running_mean/_var


def batch_norm_modules(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The batch-norm modules (opening layer, connectors) of `model` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def has_block_statistics(model: nn.Module) -> bool:
    """Whether a block of `model` keeps per-evaluation batch-norm statistics."""
    return any(name.endswith(BLOCK_STATISTICS_SUFFIX) for name, _ in model.named_buffers())


def has_batch_norm(model: nn.Module) -> bool:
    """Whether `model` keeps any running batch-norm statistics (then recomputing them is worth its cost)."""
    return bool(batch_norm_modules(model)) or has_block_statistics(model)


def batch_bounds(count: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each batch of `count` rows; a last batch of one row joins the one before it (batch
    norm needs more than one value per channel), as in training."""
    starts = list(range(0, count, batch_size))
    if len(starts) > 1 and count - starts[-1] < 2:
        starts.pop()
    return [(start, ends) for start, ends in zip(starts, [*starts[1:], count])]


@torch.no_grad()
def recompute_batch_stats(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
                          precision: str = "fp32", channels_last: bool = False) -> int:
    """Replace every running batch-norm statistic of `model` by its cumulative average over the batches of
    `x` (train-mode forward passes, no gradients); returns the number of batches (0: nothing to recompute).

    The modules' momenta and batch counters are restored afterwards, so training goes on as before. Under
    torchrun each process takes its share of every batch (batch norm all-reduces the statistics), so the
    statistics are those of one process on the whole batches.
    """
    modules = batch_norm_modules(model)
    if not (modules or has_block_statistics(model)) or not len(x):
        return 0
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in modules]
    was_training = model.training
    for m in modules:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the k-th batch weighs 1/k
    model.train()
    batches, rank, world = 0, distributed.rank(), distributed.world_size()
    try:
        for start, end in batch_bounds(len(x), batch_size):
            batches += 1
            with block_statistics_momentum(1.0 / batches), autocast(device, precision):
                model(memory_format(x[start:end][rank::world].to(device), channels_last))
    finally:
        for m, (momentum, tracked) in zip(modules, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)
        model.train(was_training)
    return batches
