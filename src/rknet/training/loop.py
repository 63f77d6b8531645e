"""One training epoch and one evaluation pass; sums stay on the device and are read once at the end."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rknet.common import distributed
from rknet.network.regularization import clip_weights_, time_regularization
from rknet.training.gradient_norms import block_gradient_norms


def autocast(device: torch.device, precision: str):
    """bf16 autocast when asked for, otherwise a no-op context."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def progress(batches: Iterable, total: int, description: str, enabled: bool | None):
    """A tqdm bar on a terminal; silent when output is redirected (or when disabled)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return batches
    from tqdm import tqdm

    return tqdm(batches, total=total, desc=description, leave=False, dynamic_ncols=True)


@dataclass
class StepOptions:
    """What a training step does besides forward, backward and the optimizer step."""

    precision: str = "fp32"
    time_reg: float = 0.0
    clip: float | None = None
    channels_last: bool = False


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    samples: int
    time_reg: float
    gradient_norms: dict[str, float]


def memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Images in channels_last layout when asked for; anything else unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def _local_shard(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """This process's rows of a global batch (all rows when not distributed)."""
    rank, world = distributed.rank(), distributed.world_size()
    return (x[rank::world], y[rank::world]) if world > 1 else (x, y)


def train_epoch(runner: nn.Module, model: nn.Module, batches: Iterable, total: int,
                optimizer: torch.optim.Optimizer, scheduler, device: torch.device, options: StepOptions,
                show_progress: bool | None, description: str) -> EpochResult:
    """Train over the global batches in `batches`; no host synchronisation until the epoch's end.

    Under DDP each process takes its rows of every global batch and scales its loss so that the
    averaged gradient is that of the global batch's mean loss, as on one process.
    """
    runner.train()
    sums = torch.zeros(2, device=device)  # loss sum, correct
    samples = 0
    world = distributed.world_size()
    gradient_norms: dict[str, float] = {}
    for index, (x_global, y_global) in enumerate(progress(batches, total, description, show_progress)):
        x, y = _local_shard(x_global, y_global)
        x = memory_format(x, options.channels_last)
        with autocast(device, options.precision):
            logits = runner(x)
        loss_sum = F.cross_entropy(logits.float(), y, reduction="sum")
        objective = loss_sum * (world / len(y_global))
        if options.time_reg:
            objective = objective + options.time_reg * time_regularization(model)
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if index == total - 1:
            gradient_norms = block_gradient_norms(model)
        optimizer.step()
        scheduler.step()
        if options.clip is not None:
            clip_weights_(model, options.clip)
        sums += torch.stack([loss_sum.detach(), (logits.detach().argmax(1) == y).sum()])
        samples += len(y)  # counted on the host: no copy to the device per step
    totals = torch.cat([sums, sums.new_tensor([samples])])
    loss, correct, samples = distributed.all_reduce_sum(totals).tolist()
    penalty = time_regularization(model).item() if options.time_reg else 0.0
    return EpochResult(loss / samples, correct / samples, int(samples), penalty, gradient_norms)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
             precision: str = "fp32", channels_last: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode on (x, y)."""
    model.eval()
    sums = torch.zeros(2, device=device)
    for start in range(0, len(x), batch_size):
        xb, yb = memory_format(x[start:start + batch_size], channels_last), y[start:start + batch_size]
        with autocast(device, precision):
            logits = model(xb).float()
        sums += torch.stack([F.cross_entropy(logits, yb, reduction="sum"), (logits.argmax(1) == yb).sum()])
    loss, correct = sums.tolist()
    return loss / len(x), correct / len(x)
