"""Optimizer with weight decay on kernels only, and a per-iteration learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from rknet.network.odenet import decay_parameter_names
from rknet.training.config import TrainConfig


def make_optimizer(model: nn.Module, config: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW; biases and norm parameters get no weight decay."""
    decayed = decay_parameter_names(model)
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decayed],
         "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n not in decayed], "weight_decay": 0.0},
    ]
    extra = {"fused": True} if fused else {}
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0, **extra)
    optimizer = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return optimizer(groups, lr=config.lr, **extra)


def lr_factor(iteration: int, config: TrainConfig, iterations_per_epoch: int, epochs: int | None = None) -> float:
    """Multiplier of the base learning rate after `iteration` optimizer steps.

    Linear warm-up over `warmup_epochs`, then cosine decay to zero at the last step, or a drop by
    `step_gamma` every `step_epochs` epochs or after each epoch of `milestones` (multistep), or constant.
    `epochs` (default: all of them) is the length of the schedule, shorter for one level of multilevel training.
    """
    total = (config.epochs if epochs is None else epochs) * iterations_per_epoch
    warmup = config.warmup_epochs * iterations_per_epoch
    if iteration < warmup:
        return (iteration + 1) / warmup
    if config.schedule == "cosine":
        progress = (iteration - warmup) / max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if config.schedule == "step":
        return config.step_gamma ** (iteration // (config.step_epochs * iterations_per_epoch))
    if config.schedule == "multistep":  # the epoch the iteration falls in, counted from 0, against milestones
        return config.step_gamma ** sum(iteration // iterations_per_epoch >= m for m in config.milestones)
    return 1.0


def sync_learning_rate(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set each parameter group's learning rate to what the schedule gives at its current iteration (after
    loading a scheduler's state under a configuration whose schedule may differ, e.g. more epochs)."""
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * factor(scheduler.last_epoch)


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, iterations_per_epoch: int,
                   epochs: int | None = None, start: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per optimizer step, over `epochs` epochs (default: the whole run),
    beginning `start` iterations into that schedule (a multilevel level that continues the run's)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda iteration: lr_factor(start + iteration, config, iterations_per_epoch, epochs))
