"""Normalisations used inside layers, written as functions of (parameters, state).

A block evaluates its layer many times per forward pass (steps x stages); batch norm keeps one set of
running statistics per evaluation, owned by the block, and passed in here as `BatchStats`. Those statistics
follow `BATCH_MOMENTUM`, or the momentum set for a while by `block_statistics_momentum` (the recomputation of
statistics before evaluation, `rknet.training.batch_stats`, sets 1/k for the k-th batch: a cumulative average).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rknet.common import distributed
from rknet.layers.controls import ParameterSpec

NORMS: tuple[str, ...] = ("batch", "tv", "none")
TV_EPS = 1e-4
BATCH_EPS = 1e-5
BATCH_MOMENTUM = 0.1
# The opening and connector batch norms of the reference implementation (DynamicBlocks) use eps 1e-4.
REFERENCE_BATCH_EPS = 1e-4


class _BlockMomentum:
    """The momentum of the blocks' per-evaluation statistics: `BATCH_MOMENTUM` unless set for a while."""

    value: float = BATCH_MOMENTUM


@contextmanager
def block_statistics_momentum(momentum: float) -> Iterator[None]:
    """Update the blocks' per-evaluation running statistics with `momentum` (in (0, 1]) inside the context."""
    if not 0 < momentum <= 1:
        raise ValueError(f"a batch-norm momentum is in (0, 1], got {momentum!r}")
    previous, _BlockMomentum.value = _BlockMomentum.value, momentum
    try:
        yield
    finally:
        _BlockMomentum.value = previous


def check_norm(norm: str | None) -> str:
    """The canonical norm name; `None` means "none"."""
    name = "none" if norm is None else norm
    if not isinstance(name, str) or name.lower() not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid norms: {', '.join(NORMS)}")
    return name.lower()


@dataclass
class BatchStats:
    """Views of one evaluation's running mean and variance, updated in place while training."""

    mean: torch.Tensor
    var: torch.Tensor


def norm_parameter_specs(norm: str, channels: int, prefix: str) -> dict[str, ParameterSpec]:
    """The learned parameters of a norm: batch norm has a scale and a shift, TV norm a shift."""
    if norm == "batch":
        return {f"{prefix}_weight": ParameterSpec((channels,), "ones", decay=False),
                f"{prefix}_bias": ParameterSpec((channels,), "zeros", decay=False)}
    if norm == "tv":
        return {f"{prefix}_bias": ParameterSpec((channels,), "zeros", decay=False)}
    return {}


def _per_channel(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return vector.reshape(1, -1, *([1] * (like.dim() - 2)))


def tv_norm(x: torch.Tensor, bias: torch.Tensor, eps: float = TV_EPS) -> torch.Tensor:
    """Divide each pixel's channel vector by its length, `x / sqrt(sum_c x^2 + eps)`, then shift.

    Computed in float32 under bf16/fp16 autocast (as autocast does for batch norm): the length of a short
    vector and the gradient through it are too coarse in 8 mantissa bits.
    """
    x32 = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    scale = torch.rsqrt(x32.square().sum(dim=1, keepdim=True) + eps)
    return torch.addcmul(_per_channel(bias, x32), x32, scale).to(x.dtype)


def apply_norm(norm: str, x: torch.Tensor, params: dict[str, torch.Tensor], prefix: str,
               stats: BatchStats | None, training: bool) -> torch.Tensor:
    """Apply the named norm with this evaluation's parameters and (for batch norm) statistics."""
    if norm == "tv":
        return tv_norm(x, params[f"{prefix}_bias"])
    if norm == "batch":
        return batch_norm(x, stats.mean, stats.var, params[f"{prefix}_weight"], params[f"{prefix}_bias"],
                          training, _BlockMomentum.value, BATCH_EPS)
    return x


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
               weight: torch.Tensor | None, bias: torch.Tensor | None, training: bool, momentum: float,
               eps: float) -> torch.Tensor:
    """`F.batch_norm`, with the batch statistics taken over all processes while training distributed.

    Sums are all-reduced differentiably, so N processes compute what one would on the global batch, on
    the CPU (gloo) as on GPUs (NCCL); `nn.SyncBatchNorm` does this on GPUs only, and not for the
    per-evaluation statistics inside dynamic blocks.
    """
    if not (training and distributed.active()):
        return F.batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    from torch.distributed.nn.functional import all_reduce

    channels = x.shape[1]
    dims = [0, *range(2, x.dim())]
    count = x.new_full((1,), x.numel() // channels)
    totals = all_reduce(torch.cat([x.sum(dims), x.square().sum(dims), count]))
    samples = totals[-1]
    mean = totals[:channels] / samples
    var = (totals[channels:2 * channels] / samples - mean.square()).clamp_min(0)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            running_mean.lerp_(mean.detach(), momentum)
            running_var.lerp_(var.detach() * samples / (samples - 1), momentum)
    shape = (1, channels) + (1,) * (x.dim() - 2)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        y = y * weight.view(shape)
    if bias is not None:
        y = y + bias.view(shape)
    return y


class BatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm for (N, C), (N, C, L) and (N, C, H, W) inputs, global-batch statistics under DDP.

    Same parameters, buffers and state_dict keys as `nn.BatchNorm1d/2d`; `momentum=None` is a cumulative
    average over the batches seen since `reset_running_stats()`, as in torch (and its
    `torch.optim.swa_utils.update_bn`).
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"BatchNorm expects 2-D, 3-D or 4-D input, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        momentum = self.momentum
        if momentum is None:  # cumulative average, as nn.BatchNorm: the k-th batch weighs 1/k
            tracked = self.num_batches_tracked
            momentum = 1.0 / float(tracked) if self.training and tracked is not None and tracked > 0 else 0.0
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                          momentum, self.eps)
