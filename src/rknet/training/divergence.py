"""Divergence: an epoch whose losses, weights or buffers are not all finite must not be kept.

A checkpoint keeps the model's parameters and buffers (batch norm's running statistics) and the
validation loss that chose the best model; all must be finite for the epoch to count as good. A run
that fails the check stops with TrainingDiverged (exit code 3) before the epoch is saved, so the
last good checkpoint stays the latest one.
"""

from __future__ import annotations

import math
from itertools import chain
from typing import Any

import torch

LOSSES = {"train_loss": "training loss", "val_loss": "validation loss"}


class TrainingDiverged(RuntimeError):
    """The loss, the weights or the running statistics became NaN or infinite; the last good checkpoint
    is kept."""


def diverged(epoch: int, what: str) -> TrainingDiverged:
    """The error for epoch `epoch`, in which `what` went wrong, saying which checkpoint stays."""
    kept = (f"the last good checkpoint (epoch {epoch - 1}) is kept" if epoch > 1
            else "no checkpoint was written")
    return TrainingDiverged(f"training diverged in epoch {epoch}: {what}; {kept}; try a smaller --lr")


def check_epoch_finite(epoch: int, record: dict[str, Any], model: torch.nn.Module) -> None:
    """TrainingDiverged unless the epoch's losses and every floating parameter and buffer of `model`
    are finite (one host synchronisation for all tensors)."""
    for key, label in LOSSES.items():
        value = record.get(key)
        if value is not None and not math.isfinite(value):
            raise diverged(epoch, f"the {label} is {value}")
    tensors = [(name, tensor) for name, tensor in chain(model.named_parameters(), model.named_buffers())
               if tensor.is_floating_point() or tensor.is_complex()]
    if not tensors:
        return
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in tensors])
    if bool(finite.all()):
        return
    name, tensor = tensors[int((~finite).int().argmax())]
    kind = "parameter" if isinstance(tensor, torch.nn.Parameter) else "buffer"
    raise diverged(epoch, f"{kind} {name} holds non-finite values")
