"""One training epoch and one evaluation pass; sums stay on the device and are read once at the end."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn


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


def train_epoch(model: nn.Module, batches: Iterable, total: int, optimizer: torch.optim.Optimizer,
                scheduler, device: torch.device, precision: str, show_progress: bool | None,
                description: str, after_backward: Callable[[], None] | None = None) -> tuple[float, float, int]:
    """Train over `batches`; returns (mean loss, accuracy, samples). No host sync inside the loop."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    for x, y in progress(batches, total, description, show_progress):
        with autocast(device, precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if after_backward is not None:
            after_backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        count += len(y)
    return loss_sum.item() / count, correct.item() / count, count


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
             precision: str = "fp32") -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode on (x, y)."""
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        with autocast(device, precision):
            logits = model(xb).float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return loss_sum.item() / len(x), correct.item() / len(x)
