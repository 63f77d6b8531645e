"""Random crop and horizontal flip for image batches, as batched tensor ops on the batch's device."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Each image of `x` (N, C, H, W) zero-padded by `padding` on every side, cropped back to H x W at a
    random offset and mirrored left-right with probability 1/2.

    The data are already normalised, so zero padding fills with the training mean. The random numbers
    come from `generator` (a CPU generator whose state can be checkpointed) and are then moved to x's
    device, so results depend only on the generator state.
    """
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip expects images (N, C, H, W), got shape {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    n, _, h, w = x.shape
    top = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator).to(x.device)
    left = torch.randint(0, 2 * padding + 1, (n, 1), generator=generator).to(x.device)
    flip = (torch.rand(n, 1, generator=generator) < 0.5).to(x.device)
    rows = top + torch.arange(h, device=x.device)  # (N, H): source row of each output row
    cols = left + torch.arange(w, device=x.device)  # (N, W): source column of each output column
    cols = torch.where(flip, cols.flip(1), cols)
    padded = F.pad(x, (padding, padding, padding, padding))
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indices around the channel slice put their (N, H, W) shape first: (N, H, W, C)
    return padded[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
