"""Normalisations used inside layers, written as functions of (parameters, state).

A block evaluates its layer many times per forward pass (steps x stages); batch norm keeps one set of
running statistics per evaluation, owned by the block, and passed in here as `BatchStats`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .distributed import batch_norm
from .specs import ParameterSpec

NORMS: tuple[str, ...] = ("batch", "tv", "none")
TV_EPS = 1e-4
BATCH_EPS = 1e-5
BATCH_MOMENTUM = 0.1


def check_norm(norm: str | None) -> str:
    """The canonical norm name; `None` means "none"."""
    name = "none" if norm is None else norm
    if not isinstance(name, str) or name.lower() not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid norms: batch, tv, none (or None)")
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
                          training, BATCH_MOMENTUM, BATCH_EPS)
    return x
