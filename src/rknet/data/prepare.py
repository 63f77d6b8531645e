"""Holding a validation set out of the training set, and normalisation statistics from training data."""

from __future__ import annotations

import torch

from rknet.data.checks import first_non_finite, format_index, row_chunks


def check_val_fraction(val_fraction: float) -> float:
    """`val_fraction` if it lies in [0, 1), else a ValueError."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    return float(val_fraction)


def holdout_indices(
    n: int, val_fraction: float, seed: int, val_indices: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted int64 (train_indices, val_indices) partitioning range(n). The validation rows are
    `val_indices` when given (to resume a run on the same split), else round(val_fraction * n) rows
    (at most n - 1) drawn by a `torch.Generator` seeded with `seed`."""
    if val_indices is None:
        n_val = min(round(val_fraction * n), n - 1)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        val = perm[:n_val]
    else:
        val = torch.as_tensor(val_indices).cpu()
        integral = not (val.is_floating_point() or val.is_complex() or val.dtype == torch.bool)
        if val.ndim != 1 or (val.numel() and not integral):
            got = f"{val.dtype} of shape {tuple(val.shape)}"
            raise ValueError(f"val_indices must be a 1-D integer tensor, got {got}")
        val = val.long()
        if val.numel() and (int(val.min()) < 0 or int(val.max()) >= n):
            raise ValueError(f"val_indices must lie in 0..{n - 1} (training set size {n})")
        if len(val.unique()) != len(val):
            raise ValueError("val_indices contains repeated rows")
        if len(val) >= n:
            raise ValueError(f"val_indices leaves no training rows (training set size {n})")
    in_val = torch.zeros(n, dtype=torch.bool)
    in_val[val] = True
    return (~in_val).nonzero().flatten(), in_val.nonzero().flatten()


def normalisation_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of `x` per feature for vectors (N, D), per channel for
    signals and images (N, C, ...), as float32; a deviation of zero, or below float32's smallest normal
    number (no precision left to divide by), becomes 1, so constant inputs map to 0.

    Both are accumulated in float64, in pieces of rows (bounded memory), with two passes (mean, then
    squared deviations): float32 inputs as large as 3e38 give a finite deviation, where a float32 sum
    of squares would overflow to inf and map every input to 0.
    """
    dims = [0, *range(2, x.ndim)]
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for _, chunk in row_chunks(x):
        total += chunk.double().sum(dims)
    mean = total / (x.numel() // x.shape[1])
    squares = torch.zeros_like(total)
    for _, chunk in row_chunks(x):
        squares += (chunk.double() - mean.view(_channel_shape(x))).square().sum(dims)
    std = (squares / (x.numel() // x.shape[1])).sqrt().float()
    return mean.float(), torch.where(std >= torch.finfo(torch.float32).tiny, std, torch.ones_like(std))


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, source: str = "data",
              name: str = "x") -> torch.Tensor:
    """`(x - mean) / std` with the statistics broadcast over axis 1 (features or channels), computed in
    float64 and stored as float32; a ValueError naming `source`/`name` and the first entry whose
    normalised value float32 cannot hold (a value far outside the training split's range)."""
    shape = _channel_shape(x)
    mean64, std64 = mean.double().view(shape), std.double().view(shape)
    out = torch.empty_like(x, dtype=torch.float32)
    for start, chunk in row_chunks(x):
        out[start:start + len(chunk)] = ((chunk.double() - mean64) / std64).float()
    bad = first_non_finite(out)
    if bad is not None:
        raise ValueError(f"{source}: {name}{format_index(bad)} = {float(x[bad]):g} lies so far outside the training "
                         "split's range that normalising it with the training mean and std overflows float32; "
                         "inputs of all splits must be on the same scale")
    return out


def _channel_shape(x: torch.Tensor) -> tuple[int, ...]:
    """The shape that broadcasts a per-channel vector over `x` (axis 1)."""
    return (1, -1) + (1,) * (x.ndim - 2)
