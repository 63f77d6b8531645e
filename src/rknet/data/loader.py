"""Mini-batches of tensors already on the device, without the overhead of a DataLoader."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from rknet.data.augment import random_crop_flip


class BatchLoader:
    """Iterates over (x, y) in mini-batches of `batch_size` rows, in a fresh random order per epoch
    when `shuffle`, with random crops and flips per batch when `augment` (images only).

    The permutation and augmentation draw from `generator`, a CPU generator (the global one when
    None), so a checkpoint of its state reproduces the epoch; indices are then moved to x's device.

    A last batch of a single row joins the batch before it (batch norm cannot normalise one sample
    of vectors), so with N % batch_size == 1 the last batch has batch_size + 1 rows.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        augment: bool = False,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        if augment and x.ndim != 4:
            raise ValueError(f"augment applies to images (N, C, H, W), got shape {tuple(x.shape)}")
        self.x = x
        self.y = y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.default_generator if generator is None else generator
        self.augment = augment
        self.drop_last = drop_last

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.x)
        if self.drop_last:
            return n // self.batch_size
        batches = math.ceil(n / self.batch_size)
        return batches - 1 if batches > 1 and n % self.batch_size == 1 else batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        order = torch.randperm(n, generator=self.generator).to(self.x.device) if self.shuffle else None
        last = len(self) - 1
        for b in range(last + 1):
            rows = slice(b * self.batch_size, n if b == last and not self.drop_last else (b + 1) * self.batch_size)
            picked = rows if order is None else order[rows]
            xb, yb = self.x[picked], self.y[picked]
            yield (random_crop_flip(xb, self.generator) if self.augment else xb), yb
