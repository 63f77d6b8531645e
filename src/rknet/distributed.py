"""Data-parallel training under `torchrun`: process group set-up and batch norm over the global batch.

Batch norm normalises with the statistics of the *global* batch (sums all-reduced, differentiably),
so a run on N processes computes what one process would compute on the same global batch, on the CPU
(gloo) as on GPUs (NCCL). `nn.SyncBatchNorm` would do this on GPUs only, and not for the per-evaluation
statistics inside dynamic blocks.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes; returns this process's device (cuda:LOCAL_RANK)."""
    if not launched_by_torchrun() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    """Leave the process group (after a barrier, so that no process exits while others still work)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over processes (identity when not distributed)."""
    if active():
        dist.all_reduce(values)
    return values


def batch_norm(x: torch.Tensor, running_mean: torch.Tensor | None, running_var: torch.Tensor | None,
               weight: torch.Tensor | None, bias: torch.Tensor | None, training: bool, momentum: float,
               eps: float) -> torch.Tensor:
    """`F.batch_norm`, with the batch statistics taken over all processes while training distributed."""
    if not (training and active()):
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

    Same parameters, buffers and state_dict keys as `nn.BatchNorm1d/2d`.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4):
            raise ValueError(f"BatchNorm expects 2-D, 3-D or 4-D input, got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        return batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                          self.momentum, self.eps)
